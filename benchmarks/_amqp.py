"""Shared machinery of the RabbitMQ benchmarks (relay, pipeline): names, driver, children.

The driver preloads the input queue, then starts the system under test and counts arrivals on
the output queue: throughput is measured between the first and the last arrival, so process
start-up is left out. Latency is measured separately with one message in flight at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import aio_pika
import orjson

from benchmarks.common import SRC_DIR, child_env, free_port

AMQP_URL = os.environ.get("ASYA_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")

NOOP_HANDLERS = """
def noop(payload):
    return payload
"""


def unique_prefix(kind: str) -> str:
    return f"bench-{kind}-{uuid.uuid4().hex[:8]}"


def make_body(steps: Sequence[str], size: int = 200) -> bytes:
    """A message of exactly ``size`` bytes routed through ``steps``."""
    base = {"route": {"steps": list(steps), "current": 0}, "payload": {"pad": ""}}
    empty = len(orjson.dumps(base))
    base["payload"] = {"pad": "x" * max(0, size - empty)}
    return orjson.dumps(base)


class Children:
    """Child processes of one measurement, always stopped (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="asya-bench-"))
        (self.workdir / "bench_handlers.py").write_text(NOOP_HANDLERS)

    def start(self, args: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(list(args), cwd=self.workdir, env=env, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_actor(
        self, queue: str, exchange: str, prefetch: int, prefix: str, extra: Sequence[str] = ()
    ) -> subprocess.Popen[bytes]:
        env = child_env(
            {
                "ASYA_STEP_HAPPY_END": f"{prefix}-happy-end",
                "ASYA_STEP_ERROR_END": f"{prefix}-error-end",
                "ASYA_METRICS_ADDR": f"127.0.0.1:{free_port()}",
                "PYTHONPATH": os.pathsep.join([str(SRC_DIR), str(self.workdir)]),
            }
        )
        args = [sys.executable, "-m", "asya.cli", "actor", "--handler", "bench_handlers.noop"]
        args += ["--queue", queue, "--transport-url", AMQP_URL, "--exchange", exchange]
        args += ["--prefetch", str(prefetch), "--timeout", "30s", *extra]
        return self.start(args, env)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time used so far by each child's process tree, keyed by role."""
        try:
            import psutil
        except ImportError:  # a dev dependency: without it the CPU columns stay empty
            return {}

        usage: dict[str, float] = {}
        for proc in self.procs:
            try:
                root = psutil.Process(proc.pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for member in tree:
                try:
                    cmdline = " ".join(member.cmdline())
                    times = member.cpu_times()
                except psutil.NoSuchProcess:
                    continue
                role = next(
                    (r for r in ("sidecar", "runtime", "actor") if f"asya.{r}" in cmdline
                     or f"cli {r}" in cmdline),
                    "relay",
                )  # fmt: skip
                usage[role] = usage.get(role, 0.0) + times.user + times.system
        return usage

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()
        for path in self.workdir.iterdir():
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            self.workdir.rmdir()


class Driver:
    """Publishes into the system under test and watches its output queue."""

    def __init__(self, exchange: str, output_queue: str) -> None:
        self.exchange_name = exchange
        self.output_queue = output_queue
        self.arrivals: asyncio.Queue[float] = asyncio.Queue()
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._queues: list[str] = []

    async def open(self, queues: Sequence[str]) -> None:
        self._connection = await aio_pika.connect_robust(AMQP_URL)
        self.channel = await self._connection.channel(publisher_confirms=True)
        self.exchange = await self.channel.declare_exchange(
            self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        for name in queues:
            queue = await self.channel.declare_queue(name, durable=True)
            await queue.bind(self.exchange, routing_key=name)
            self._queues.append(name)
        sink_channel = await self._connection.channel()
        await sink_channel.set_qos(prefetch_count=2000)
        self._sink = await sink_channel.get_queue(self.output_queue)
        self._sink_tag = await self._sink.consume(self._on_output, no_ack=True)

    async def _on_output(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.arrivals.put_nowait(time.perf_counter())

    async def preload(self, queue: str, body: bytes, count: int, batch: int = 500) -> None:
        for start in range(0, count, batch):
            await asyncio.gather(
                *(
                    self.exchange.publish(
                        aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=queue,
                    )
                    for _ in range(min(batch, count - start))
                )
            )

    async def publish_raw(self, routing_key: str, body: bytes, *, default_exchange: bool) -> None:
        exchange = self.channel.default_exchange if default_exchange else self.exchange
        await exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=routing_key,
        )

    async def throughput(
        self, count: int, within: float, on_first: Callable[[], object] | None = None
    ) -> tuple[float, float]:
        """Wait for ``count`` outputs; (seconds between first and last, msgs/s)."""
        first = await asyncio.wait_for(self.arrivals.get(), within)
        if on_first is not None:
            on_first()
        last = first
        deadline = time.perf_counter() + within
        for _ in range(count - 1):
            last = await asyncio.wait_for(self.arrivals.get(), deadline - time.perf_counter())
        seconds = max(last - first, 1e-9)
        return seconds, (count - 1) / seconds

    async def latencies(self, send: object, samples: int) -> list[float]:
        """Round trips (ms) of ``samples`` messages sent one at a time by ``send()``."""
        result = []
        for _ in range(samples):
            started = time.perf_counter()
            await send()  # type: ignore[operator]
            arrived = await asyncio.wait_for(self.arrivals.get(), 30.0)
            result.append((arrived - started) * 1000)
        return result

    async def close(self, delete: Sequence[str] = (), exchanges: Sequence[str] = ()) -> None:
        """Delete this run's queues (and ``delete``) and exchanges (and ``exchanges``)."""
        if self._connection is None:
            return
        with contextlib.suppress(Exception):
            await self._sink.cancel(self._sink_tag)
        with contextlib.suppress(Exception):
            channel = await self._connection.channel()
            for name in {*self._queues, *delete}:
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name)
            for exchange in (self.exchange_name, *exchanges):
                with contextlib.suppress(Exception):
                    await channel.exchange_delete(exchange)
        await self._connection.close()


async def wait_for_consumers(driver: Driver, queue: str, count: int) -> None:
    """Wait until ``queue`` has ``count`` consumers (the system under test is ready)."""
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        channel = await driver._connection.channel()  # type: ignore[union-attr]
        try:
            declared = await channel.declare_queue(queue, passive=True)
            if (declared.declaration_result.consumer_count or 0) >= count:
                return
        finally:
            await channel.close()
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no consumer on {queue} after 30 s")
