"""``asya bench relay``: one actor (sidecar + runtime, no-op handler) against a bare relay.

For each prefetch (1, 10, 100 by default), on the machine's RabbitMQ with names of its own:
(a) a bare aio-pika consume → publish(confirm) → ack relay, the ceiling, and (b) ``asya actor``
with a no-op handler. Each relays ``--messages`` preloaded 200-byte messages (msgs/s between the
first and last arrival), then ``--latency-samples`` messages one at a time (p50/p99 round trip).
Targets: (b)/(a) ≥ 0.8 at prefetch 100, ≥ 0.7 at prefetch 10; added p50 ≤ 0.5 ms per hop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from benchmarks._amqp import (
    AMQP_URL,
    Children,
    Driver,
    make_body,
    unique_prefix,
    wait_for_consumers,
)
from benchmarks.common import Result, child_env, print_table


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="asya bench relay", description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000, help="messages per run")
    parser.add_argument("--prefetch", default="1,10,100", help="comma-separated prefetch values")
    parser.add_argument("--latency-samples", type=int, default=500)
    parser.add_argument("--size", type=int, default=200, help="message size in bytes")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each configuration N times, alternating, and keep the best (noisy machines)",
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
        if kind == "bare":
            script = str(Path(__file__).with_name("_bare_relay.py"))
            args_ = [AMQP_URL, prefix, source, destination, str(prefetch)]
            children.start([sys.executable, script, *args_], child_env())
        else:
            children.start_actor(source, prefix, prefetch, prefix)
        cpu_at_first: dict[str, float] = {}
        seconds, _ = await driver.throughput(
            args.messages,
            within=120 + args.messages / 100,
            on_first=lambda: cpu_at_first.update(children.cpu_seconds()),
        )
        cpu_used = {
            role: (spent - cpu_at_first.get(role, 0.0)) / (args.messages - 1) * 1e6
            for role, spent in children.cpu_seconds().items()
            if role != "actor"
        }
        await wait_for_consumers(driver, source, 1)
        latencies = await driver.latencies(
            lambda: driver.publish_raw(source, body, default_exchange=False),
            args.latency_samples,
        )
        return Result(
            name="bare relay" if kind == "bare" else "asya actor",
            count=args.messages - 1,
            seconds=seconds,
            latencies_ms=latencies,
            extra={"cpu µs/msg": " + ".join(f"{role} {us:.0f}" for role, us in cpu_used.items())},
        )
    finally:
        children.stop_all()
        await driver.close(delete=extra_queues)


async def run(args: argparse.Namespace) -> int:
    prefetches = [int(p) for p in args.prefetch.split(",") if p.strip()]
    summary = []
    for prefetch in prefetches:
        bares, actors = [], []
        for _ in range(max(1, args.repeat)):
            bares.append(await measure("bare", prefetch, args))
            actors.append(await measure("actor", prefetch, args))
        bare = max(bares, key=lambda r: r.rate)
        actor = max(actors, key=lambda r: r.rate)
        ratio = actor.rate / bare.rate if bare.rate else 0.0
        added = actor.percentile(50) - bare.percentile(50)
        actor.extra = {**(actor.extra or {}), "(b)/(a)": f"{ratio:.2f}", "+p50 ms": f"{added:.3f}"}
        print_table(
            f"relay: {args.messages} × {args.size} B, prefetch {prefetch}, RabbitMQ"
            + (f", best of {args.repeat}" if args.repeat > 1 else ""),
            [bare, actor],
        )
        summary.append((prefetch, ratio, added))
    for prefetch, ratio, added in summary:
        target = {100: 0.8, 10: 0.7}.get(prefetch)
        verdict = "" if target is None else (" ok" if ratio >= target else f" < {target} target")
        print(
            f"prefetch {prefetch:>3}: (b)/(a) = {ratio:.2f}{verdict}; added p50 {added:.3f} ms/hop"
        )
    return 0


def main(argv: list[str]) -> int:
    os.environ.setdefault("COLUMNS", "140")  # rich tables: room for every column
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
