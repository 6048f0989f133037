"""``asya bench pipeline [--vs celery]``: a 3-step no-op pipeline end to end.

Asya: three ``asya actor`` processes (sidecar + runtime each) routing ``s1 → s2 → s3 →
happy-end``, on RabbitMQ and on the SQLite transport (the embedded default). Beside it, the
transport's ceiling: three bare relays chained the same way (consume → persistent, mandatory,
confirmed publish → ack, no runtime), once with aio-pika and once with py-amqp; the faster chain
is *the ceiling* and every row's ratio is against it. With ``--vs celery`` (celery installed:
the ``bench`` extra), the same 3-task chain in one Celery worker with three prefork processes on
the same broker, its last task publishing to an output queue as Asya's happy-end.

Every system relays ``--messages`` preloaded messages and is timed over the same window: from
the first step's first message (a timestamp that step writes) to the N-th arrival at the output
(``_window.py``). Then ``--latency-samples`` one at a time (p50/p99). Target: the Asya pipeline
≥ 2× Celery's chain.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import textwrap
from collections.abc import Awaitable, Callable

from benchmarks._amqp import (
    AMQP_URL,
    CPU_COLUMNS,
    Children,
    CpuMeter,
    Driver,
    bare_clients,
    make_body,
    unique_prefix,
    wait_for_consumers,
)
from benchmarks._sqlite import SqliteDriver
from benchmarks._window import WINDOW_DEFINITION, Arrivals
from benchmarks.common import Result, child_env, print_table

CELERY_TASKS = """
import os
from pathlib import Path

from bench_marker import mark_first_start
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
MARKER = str(Path(__file__).with_name("first-start"))


@app.task(name="first")
def first(payload):
    mark_first_start(MARKER)
    return payload


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
    parser.add_argument("--messages", type=int, default=3_000)
    parser.add_argument("--prefetch", type=int, default=10, help="prefetch of each actor")
    parser.add_argument("--latency-samples", type=int, default=200)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--vs", choices=["celery"], help="also run the same chain in Celery")
    parser.add_argument(
        "--verbose", action="store_true", help="print each run's raw timestamps under the table"
    )
    return parser.parse_args(argv)


async def measure_started(
    name: str,
    driver: Arrivals,
    children: Children,
    args: argparse.Namespace,
    send: Callable[[], Awaitable[None]],
    *,
    seconds_per_message: float,
    latency_samples: int | None = None,
    before_latencies: Callable[[], Awaitable[None]] | None = None,
) -> Result:
    """Throughput and CPU over the window, then one-at-a-time latencies."""
    cpu = CpuMeter(children)
    window = await driver.throughput(
        args.messages,
        120 + args.messages * seconds_per_message,
        children.marker,
        on_start=cpu.start,
        check_alive=children.check_alive,
    )
    cpu_columns = cpu.columns(args.messages)
    if before_latencies is not None:
        await before_latencies()
    samples = args.latency_samples if latency_samples is None else latency_samples
    latencies = await driver.latencies(send, samples)
    return Result.over(name, window, latencies, cpu_columns)


async def all_consuming_of(driver: Driver, queues: list[str]) -> None:
    for queue in queues:
        await wait_for_consumers(driver, queue, 1)


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
        for queue in reversed(steps[1:]):  # downstream first: their start-up is not measured
            children.start_actor(queue, prefix, args.prefetch, prefix)
        await all_consuming_of(driver, steps[1:])
        children.start_actor(steps[0], prefix, args.prefetch, prefix, first=True)
        return await measure_started(
            f"asya: 3 actors, RabbitMQ (prefetch {args.prefetch})",
            driver,
            children,
            args,
            lambda: driver.publish_raw(steps[0], body, default_exchange=False),
            seconds_per_message=1 / 50,
            before_latencies=lambda: all_consuming_of(driver, steps),
        )
    finally:
        children.stop_all()
        await driver.close()


async def measure_asya_sqlite(args: argparse.Namespace) -> Result:
    """The same pipeline on the SQLite transport: one database file, actors polling it."""
    prefix = unique_prefix("pipeline-sqlite")
    steps = [f"{prefix}-s1", f"{prefix}-s2", f"{prefix}-s3"]
    happy, error = f"{prefix}-happy-end", f"{prefix}-error-end"
    children = Children()
    driver = SqliteDriver(children.workdir / "queues.db", output_queue=happy)
    body = make_body(steps, args.size)
    try:
        await driver.open([*steps, happy, error])
        await driver.preload(steps[0], body, args.messages)
        for queue in reversed(steps[1:]):
            children.start_actor(queue, prefix, args.prefetch, prefix, transport_url=driver.url)
        await children.settle()
        children.start_actor(
            steps[0], prefix, args.prefetch, prefix, first=True, transport_url=driver.url
        )
        return await measure_started(
            f"asya: 3 actors, SQLite (prefetch {args.prefetch})",
            driver,
            children,
            args,
            lambda: driver.publish(steps[0], body),
            seconds_per_message=1 / 20,
            latency_samples=min(args.latency_samples, 50),  # idle pollers back off to 50 ms
        )
    finally:
        children.stop_all()
        await driver.close()


async def measure_bare_chain(args: argparse.Namespace, client: str) -> Result:
    """The ceiling on this transport: three bare relays chained s1 → s2 → s3 → out."""
    prefix = unique_prefix(f"pipeline-{client}")
    hops = [f"{prefix}-s1", f"{prefix}-s2", f"{prefix}-s3", f"{prefix}-out"]
    driver = Driver(exchange=prefix, output_queue=hops[-1])
    children = Children()
    body = make_body(hops[:3], args.size)
    try:
        await driver.open(hops)
        await driver.preload(hops[0], body, args.messages)
        links = list(itertools.pairwise(hops))
        for source, destination in reversed(links[1:]):
            children.start_bare_relay(client, prefix, source, destination, args.prefetch)
        await all_consuming_of(driver, hops[1:3])
        children.start_bare_relay(client, prefix, *links[0], args.prefetch, first=True)
        return await measure_started(
            f"bare {client}: 3 chained relays (prefetch {args.prefetch})",
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
        }
    )
    env["PYTHONPATH"] = os.pathsep.join([str(children.workdir), env["PYTHONPATH"]])
    for key in ("BENCH_BROKER", "BENCH_QUEUE", "BENCH_OUTPUT", "BENCH_AT_LEAST_ONCE"):
        os.environ[key] = env[key]
    sys.path.insert(0, str(children.workdir))
    try:
        import asya_celery_bench as tasks  # type: ignore[import-not-found]
        from celery import chain

        await driver.open([output])
        payload = {"pad": "x" * max(0, args.size - 40)}

        def send() -> None:
            chain(tasks.first.s(payload), tasks.step.s(), tasks.last.s()).apply_async()

        for _ in range(args.messages):
            send()
        children.start(
            [sys.executable, "-m", "celery", "-A", "asya_celery_bench", "--quiet", "worker", "-Q",
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
    asya = await measure_asya(args)
    sqlite = await measure_asya_sqlite(args)
    bares = [await measure_bare_chain(args, client) for client in bare_clients()]
    ceiling = max(bares, key=lambda r: r.rate)
    celeries: list[Result] = []
    if args.vs == "celery":
        try:
            import celery  # noqa: F401
        except ImportError:
            print("celery is not installed: skipping --vs celery (pip install 'asya[bench]')")
        else:
            celeries.append(await measure_celery(args, at_least_once=False))
            celeries.append(await measure_celery(args, at_least_once=True))
    results = [asya, sqlite, *bares, *celeries]
    print_table(
        f"pipeline: 3 steps, {args.messages} × {args.size} B",
        results,
        baseline=ceiling,
        baseline_label="vs ceiling",
        caption=f"ceiling: {ceiling.name} (the faster bare chain). {WINDOW_DEFINITION}. "
        "cpu µs/msg: CPU of each process kind per message through all 3 steps. "
        f"{CPU_COLUMNS}",
    )
    if args.verbose:
        for result in results:
            assert result.window is not None
            print(f"  {result.name}: {result.window.describe()}")
    print(f"asya / ceiling ({ceiling.name}): {_ratio(asya, ceiling):.2f}× throughput")
    for other in celeries:
        ratio = _ratio(asya, other)
        verdict = "ok" if ratio >= 2 else "below the 2× target"
        print(f"asya / {other.name}: {ratio:.2f}× throughput ({verdict})")
        print(f"  (ceiling / {other.name}: {_ratio(ceiling, other):.2f}×)")
    return 0


def _ratio(a: Result, b: Result) -> float:
    return a.rate / b.rate if b.rate else 0.0


def main(argv: list[str]) -> int:
    os.environ.setdefault("COLUMNS", "180")
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
