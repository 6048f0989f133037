"""``asya bench pipeline [--vs celery]``: a 3-step no-op pipeline end to end on RabbitMQ.

Asya: three ``asya actor`` processes (sidecar + runtime each) routing ``s1 → s2 → s3 →
happy-end``. Beside it, the transport's ceiling: three bare aio-pika relays chained the same
way (consume → confirmed publish → ack, no runtime). With ``--vs celery`` (celery installed: the
``bench`` extra), the same 3-task chain in one Celery worker with three prefork processes on
the same broker, its last task publishing to an output queue as Asya's happy-end. Each relays
``--messages`` preloaded messages (msgs/s between first and last arrival), then
``--latency-samples`` one at a time (p50/p99). Target: the Asya pipeline ≥ 2× Celery's chain.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import textwrap
from collections.abc import Awaitable, Callable
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

CELERY_TASKS = """
import os

from celery import Celery

app = Celery("asya_bench", broker=os.environ["BENCH_BROKER"])
app.conf.update(
    task_default_queue=os.environ["BENCH_QUEUE"],
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
if os.environ.get("BENCH_AT_LEAST_ONCE") == "1":
    # Asya's guarantees: ack after the work, publishes confirmed by the broker.
    app.conf.update(task_acks_late=True, broker_transport_options={"confirm_publish": True})
OUTPUT = os.environ["BENCH_OUTPUT"]


@app.task(name="step")
def step(payload):
    return payload


@app.task(name="last")
def last(payload):
    with app.producer_or_acquire() as producer:
        producer.publish(payload, exchange="", routing_key=OUTPUT, serializer="json", retry=False)
    return payload
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="asya bench pipeline", description=__doc__)
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--prefetch", type=int, default=10, help="prefetch of each actor")
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--vs", choices=["celery"], help="also run the same chain in Celery")
    return parser.parse_args(argv)


class CpuMeter:
    """CPU time all children spend between the first and the last arrival."""

    def __init__(self, children: Children) -> None:
        self._children = children
        self._start = 0.0

    def start(self) -> None:
        self._start = sum(self._children.cpu_seconds().values())

    def per_message(self, count: int) -> str:
        used = sum(self._children.cpu_seconds().values()) - self._start
        return f"{used / count * 1e6:.0f}" if used > 0 else "-"


async def measure_started(
    name: str,
    driver: Driver,
    children: Children,
    args: argparse.Namespace,
    send: Callable[[], Awaitable[None]],
    *,
    seconds_per_message: float,
    before_latencies: Callable[[], Awaitable[None]] | None = None,
) -> Result:
    """Throughput and CPU over the preloaded messages, then one-at-a-time latencies."""
    cpu = CpuMeter(children)
    seconds, _ = await driver.throughput(
        args.messages, within=120 + args.messages * seconds_per_message, on_first=cpu.start
    )
    cpu_us = cpu.per_message(args.messages - 1)
    if before_latencies is not None:
        await before_latencies()
    return Result(
        name=name,
        count=args.messages - 1,
        seconds=seconds,
        latencies_ms=await driver.latencies(send, args.latency_samples),
        extra={"cpu µs/msg": cpu_us},
    )


async def measure_asya(args: argparse.Namespace) -> Result:
    prefix = unique_prefix("pipeline")
    steps = [f"{prefix}-s1", f"{prefix}-s2", f"{prefix}-s3"]
    happy, error = f"{prefix}-happy-end", f"{prefix}-error-end"
    driver = Driver(exchange=prefix, output_queue=happy)
    children = Children()
    body = make_body(steps, args.size)
    try:
        await driver.open([*steps, happy, error])
        await driver.preload(steps[0], body, args.messages)
        for queue in steps:
            children.start_actor(queue, prefix, args.prefetch, prefix)

        async def all_consuming() -> None:
            for queue in steps:
                await wait_for_consumers(driver, queue, 1)

        return await measure_started(
            f"asya: 3 actors (prefetch {args.prefetch})",
            driver,
            children,
            args,
            lambda: driver.publish_raw(steps[0], body, default_exchange=False),
            seconds_per_message=1 / 50,
            before_latencies=all_consuming,
        )
    finally:
        children.stop_all()
        await driver.close()


async def measure_bare_chain(args: argparse.Namespace) -> Result:
    """The ceiling on this transport: three bare aio-pika relays chained s1 → s2 → s3 → out."""
    prefix = unique_prefix("pipeline-bare")
    hops = [f"{prefix}-s1", f"{prefix}-s2", f"{prefix}-s3", f"{prefix}-out"]
    driver = Driver(exchange=prefix, output_queue=hops[-1])
    children = Children()
    script = str(Path(__file__).with_name("_bare_relay.py"))
    body = make_body(hops[:3], args.size)
    try:
        await driver.open(hops)
        await driver.preload(hops[0], body, args.messages)
        for source, destination in itertools.pairwise(hops):
            children.start(
                [sys.executable, script, AMQP_URL, prefix, source, destination, str(args.prefetch)],
                child_env(),
            )
        return await measure_started(
            f"bare aio-pika: 3 chained relays (prefetch {args.prefetch})",
            driver,
            children,
            args,
            lambda: driver.publish_raw(hops[0], body, default_exchange=False),
            seconds_per_message=1 / 50,
        )
    finally:
        children.stop_all()
        await driver.close()


async def measure_celery(args: argparse.Namespace, at_least_once: bool) -> Result:
    prefix = unique_prefix("celery")
    task_queue, output = f"{prefix}-tasks", f"{prefix}-out"
    driver = Driver(exchange=prefix, output_queue=output)
    children = Children()
    (children.workdir / "asya_celery_bench.py").write_text(textwrap.dedent(CELERY_TASKS))
    env = child_env(
        {
            "BENCH_BROKER": AMQP_URL,
            "BENCH_QUEUE": task_queue,
            "BENCH_OUTPUT": output,
            "BENCH_AT_LEAST_ONCE": "1" if at_least_once else "0",
            "PYTHONPATH": str(children.workdir),
        }
    )
    for key in ("BENCH_BROKER", "BENCH_QUEUE", "BENCH_OUTPUT", "BENCH_AT_LEAST_ONCE"):
        os.environ[key] = env[key]
    sys.path.insert(0, str(children.workdir))
    try:
        import asya_celery_bench as tasks  # type: ignore[import-not-found]
        from celery import chain

        await driver.open([output])
        payload = {"pad": "x" * max(0, args.size - 40)}

        def send() -> None:
            chain(tasks.step.s(payload), tasks.step.s(), tasks.last.s()).apply_async()

        for _ in range(args.messages):
            send()
        children.start(
            [sys.executable, "-m", "celery", "-A", "asya_celery_bench", "worker", "-Q",
             task_queue, "--concurrency", "3", "--pool", "prefork", "--loglevel", "WARNING",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env,
        )  # fmt: skip

        async def send_async() -> None:
            await asyncio.to_thread(send)

        mode = "acks_late + confirms" if at_least_once else "defaults"
        return await measure_started(
            f"celery: 3-task chain, 3 processes, {mode}",
            driver,
            children,
            args,
            send_async,
            seconds_per_message=1 / 20,
        )
    finally:
        children.stop_all()
        await driver.close(delete=[task_queue], exchanges=[task_queue])  # kombu's exchange
        tasks_module = sys.modules.pop("asya_celery_bench", None)
        if tasks_module is not None:
            tasks_module.app.close()
        sys.path.remove(str(children.workdir))


async def run(args: argparse.Namespace) -> int:
    results = [await measure_asya(args), await measure_bare_chain(args)]
    if args.vs == "celery":
        try:
            import celery  # noqa: F401
        except ImportError:
            print("celery is not installed: skipping --vs celery (pip install 'asya[bench]')")
        else:
            results.append(await measure_celery(args, at_least_once=False))
            results.append(await measure_celery(args, at_least_once=True))
    title = f"pipeline: 3 steps, {args.messages} × {args.size} B, RabbitMQ"
    print_table(title, results)
    asya, bare = results[0], results[1]
    print(f"asya / {bare.name}: {_ratio(asya, bare):.2f}× throughput (the transport's ceiling)")
    for other in results[2:]:
        ratio = _ratio(asya, other)
        verdict = "ok" if ratio >= 2 else "below the 2× target"
        print(f"asya / {other.name}: {ratio:.2f}× throughput ({verdict})")
        print(f"  (bare aio-pika chain / {other.name}: {_ratio(bare, other):.2f}×)")
    return 0


def _ratio(a: Result, b: Result) -> float:
    return a.rate / b.rate if b.rate else 0.0


def main(argv: list[str]) -> int:
    os.environ.setdefault("COLUMNS", "140")
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
