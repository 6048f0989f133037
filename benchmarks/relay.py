"""``asya bench relay``: one actor (sidecar + runtime, no-op handler) against bare relays.

For each prefetch (1, 10, 100 by default), on the machine's RabbitMQ with names of its own:
two bare relays doing only consume → persistent, mandatory, confirmed publish → ack — (a)
aio-pika and (b) py-amqp (Celery's client, a synchronous pipelined loop) — (c) the py-amqp
relay making one round trip per message over a kept Unix socket to a bare stdlib runtime
(length-prefixed JSON, ``_bare_runtime.py``): *the floor* any sidecar + runtime design pays —
and (d) ``asya actor`` with a no-op handler. The faster bare relay is *the ceiling*; every
row's ratio is against it, and the actor's is also given against the floor. Each relays
``--messages`` preloaded 200-byte messages, timed from the relay's first message to the N-th
arrival (``_window.py``), then ``--latency-samples`` one at a time (p50/p99 round trip).
Targets: actor / ceiling ≥ 0.7 at prefetch 10 and 100; added p50 ≤ 0.3 ms per hop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from benchmarks._amqp import (
    CPU_COLUMNS,
    SOCKET_FLOOR,
    Children,
    CpuMeter,
    Driver,
    bare_clients,
    make_body,
    unique_prefix,
    wait_for_consumers,
)
from benchmarks._window import WINDOW_DEFINITION
from benchmarks.common import Result, print_table

#: actor / ceiling wanted at these prefetch values; and the p50 a hop may add, in ms.
TARGETS = {10: 0.7, 100: 0.7}
ADDED_P50_TARGET = 0.3

KINDS = {
    "aio-pika": "bare aio-pika relay",
    "py-amqp": "bare py-amqp relay",
    SOCKET_FLOOR: "relay + socket call",
    "actor": "asya actor",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="asya bench relay", description=__doc__)
    parser.add_argument("--messages", type=int, default=5_000, help="messages per run")
    parser.add_argument("--prefetch", default="1,10,100", help="comma-separated prefetch values")
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--size", type=int, default=200, help="message size in bytes")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each configuration N times, alternating, and keep the best (noisy machines)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="print each run's raw timestamps under the table"
    )
    return parser.parse_args(argv)


async def measure(kind: str, prefetch: int, args: argparse.Namespace) -> Result:
    prefix = unique_prefix(f"relay-{kind}")
    source, destination = f"{prefix}-in", f"{prefix}-out"
    extra_queues = [f"{prefix}-happy-end", f"{prefix}-error-end"]
    driver = Driver(exchange=prefix, output_queue=destination)
    children = Children()
    body = make_body([source, destination], args.size)
    try:
        await driver.open([source, destination, *extra_queues])
        await driver.preload(source, body, args.messages)
        if kind == "actor":
            children.start_actor(source, prefix, prefetch, prefix, first=True)
        else:
            children.start_bare_relay(kind, prefix, source, destination, prefetch, first=True)
        cpu = CpuMeter(children)
        window = await driver.throughput(
            args.messages,
            120 + args.messages / 100,
            children.marker,
            cpu.start,
            children.check_alive,
        )
        cpu_columns = cpu.columns(args.messages)
        await wait_for_consumers(driver, source, 1)
        latencies = await driver.latencies(
            lambda: driver.publish_raw(source, body, default_exchange=False),
            args.latency_samples,
        )
        return Result.over(KINDS[kind], window, latencies, cpu_columns)
    finally:
        children.stop_all()
        await driver.close(delete=extra_queues)


async def run(args: argparse.Namespace) -> int:
    prefetches = [int(p) for p in args.prefetch.split(",") if p.strip()]
    summary = []
    clients = bare_clients()
    for prefetch in prefetches:
        floor_kinds = [SOCKET_FLOOR] if "py-amqp" in clients else []
        runs: dict[str, list[Result]] = {kind: [] for kind in [*clients, *floor_kinds, "actor"]}
        for _ in range(max(1, args.repeat)):
            for kind in runs:
                runs[kind].append(await measure(kind, prefetch, args))
        best = {kind: max(results, key=lambda r: r.rate) for kind, results in runs.items()}
        ceiling = max((best[client] for client in clients), key=lambda r: r.rate)
        actor = best["actor"]
        ratio = actor.rate / ceiling.rate if ceiling.rate else 0.0
        floor = best.get(SOCKET_FLOOR)
        of_floor = actor.rate / floor.rate if floor is not None and floor.rate else None
        added = actor.percentile(50) - ceiling.percentile(50)
        actor.extra = {**(actor.extra or {}), "+p50 ms": f"{added:.3f}"}
        if of_floor is not None:
            actor.extra["vs floor"] = f"{of_floor:.2f}"
        print_table(
            f"relay: {args.messages} × {args.size} B, prefetch {prefetch}, RabbitMQ"
            + (f", best of {args.repeat}" if args.repeat > 1 else ""),
            list(best.values()),
            baseline=ceiling,
            baseline_label="vs ceiling",
            caption=f"ceiling: {ceiling.name} (the faster bare relay). {WINDOW_DEFINITION}. "
            f"{CPU_COLUMNS}",
        )
        if args.verbose:
            for result in best.values():
                assert result.window is not None
                print(f"  {result.name}: {result.window.describe()}")
        summary.append((prefetch, ratio, added, ceiling.name, of_floor))
    for prefetch, ratio, added, ceiling_name, of_floor in summary:
        target = TARGETS.get(prefetch)
        verdict = "" if target is None else (" ok" if ratio >= target else f" < {target} target")
        floor_text = (
            "" if of_floor is None else f" (of the relay + socket call floor: {of_floor:.2f})"
        )
        print(
            f"prefetch {prefetch:>3}: asya actor / {ceiling_name} = {ratio:.2f}{verdict}"
            f"{floor_text}; added p50 {added:.3f} ms/hop"
            + (" ok" if added <= ADDED_P50_TARGET else f" > {ADDED_P50_TARGET} target")
        )
    return 0


def main(argv: list[str]) -> int:
    os.environ.setdefault("COLUMNS", "160")  # rich tables: room for every column
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
