"""Shared machinery of the RabbitMQ benchmarks (relay, pipeline): names, driver, children.

The driver preloads the input queue, then starts the system under test and counts arrivals on
the output queue: throughput is measured over the window of ``_window.py`` (the first step's
first message to the N-th arrival), CPU over the same window, so process start-up is left out.
Latency is measured separately with one message in flight at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import aio_pika
import orjson

from benchmarks._window import Arrivals
from benchmarks.common import SRC_DIR, child_env, free_port

AMQP_URL = os.environ.get("ASYA_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")

BENCH_DIR = Path(__file__).resolve().parent

NOOP_HANDLERS = """
from pathlib import Path

from bench_marker import mark_first_start

MARKER = str(Path(__file__).with_name("first-start"))


def noop(payload):
    return payload


def first(payload):
    mark_first_start(MARKER)
    return payload
"""

#: Process kinds told apart in the CPU columns, by a piece of their command line.
ROLES = (
    ("sidecar", ("asya.sidecar", "cli sidecar")),
    ("runtime", ("asya.runtime", "cli runtime")),
    ("actor", ("cli actor",)),
    ("celery worker", ("celery",)),
    ("aio-pika relay", ("_bare_relay.py",)),
    ("py-amqp relay", ("_bare_pyamqp_relay.py",)),
    ("bare runtime", ("_bare_runtime.py",)),
)

#: The floor of ``asya bench relay``: the bare py-amqp relay with one socket round trip per
#: message to a bare stdlib runtime (``_bare_pyamqp_relay.py``'s SOCKET mode).
SOCKET_FLOOR = "py-amqp + socket"


def bare_clients() -> list[str]:
    """The clients of the bare relays that can run here: py-amqp needs the ``bench`` extra."""
    if importlib.util.find_spec("amqp") is None:
        print("py-amqp is not installed: no bare py-amqp relay (pip install 'asya[bench]')")
        return ["aio-pika"]
    return ["aio-pika", "py-amqp"]


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
        (self.workdir / "bench_marker.py").write_text((BENCH_DIR / "_marker.py").read_text())
        #: Where the first step writes the time of its first message (see ``_window.py``).
        self.marker = self.workdir / "first-start"

    def start(self, args: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(list(args), cwd=self.workdir, env=env, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_actor(
        self,
        queue: str,
        exchange: str,
        prefetch: int,
        prefix: str,
        *,
        first: bool = False,
        transport_url: str = AMQP_URL,
    ) -> subprocess.Popen[bytes]:
        """``asya actor`` with a no-op handler; the ``first`` step also writes the marker."""
        env = child_env(
            {
                "ASYA_STEP_HAPPY_END": f"{prefix}-happy-end",
                "ASYA_STEP_ERROR_END": f"{prefix}-error-end",
                "ASYA_METRICS_ADDR": f"127.0.0.1:{free_port()}",
                "PYTHONPATH": os.pathsep.join([str(SRC_DIR), str(self.workdir)]),
            }
        )
        handler = "bench_handlers.first" if first else "bench_handlers.noop"
        args = [sys.executable, "-m", "asya.cli", "actor", "--handler", handler]
        args += ["--queue", queue, "--transport-url", transport_url, "--exchange", exchange]
        args += ["--prefetch", str(prefetch), "--timeout", "30s"]
        return self.start(args, env)

    def start_bare_relay(
        self,
        client: str,
        exchange: str,
        source: str,
        destination: str,
        prefetch: int,
        *,
        first: bool = False,
    ) -> subprocess.Popen[bytes]:
        """A bare relay (``client``: aio-pika, py-amqp, or ``SOCKET_FLOOR``: py-amqp calling a
        bare runtime for each message); the ``first`` one writes the marker."""
        script = "_bare_relay.py" if client == "aio-pika" else "_bare_pyamqp_relay.py"
        args = [sys.executable, str(BENCH_DIR / script), AMQP_URL, exchange, source, destination]
        args += [str(prefetch), str(self.marker) if first else ""]
        if client == SOCKET_FLOOR:
            args.append(str(self.workdir / f"bare-runtime-{len(self.procs)}.sock"))
        return self.start(args, child_env())

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
                    (role for role, marks in ROLES if any(m in cmdline for m in marks)), "other"
                )
                usage[role] = usage.get(role, 0.0) + times.user + times.system
        return usage

    def check_alive(self) -> None:
        """Raise if a child has exited (it failed to start: its error is on stderr above)."""
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(map(str, proc.args))} exited with {proc.returncode}")

    async def settle(self) -> None:
        """Wait (30 s at most) until the children are idle: under 5 % of a core for 0.25 s."""
        deadline = time.monotonic() + 30.0
        before = sum(self.cpu_seconds().values())
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            now = sum(self.cpu_seconds().values())
            if now - before < 0.0125:
                return
            before = now

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


CPU_COLUMNS = (
    "broker µs/msg: RabbitMQ's CPU per message; machine µs/msg: every core's busy time per "
    "message (all processes, the driver included; meaningful on a quiet machine)"
)


class CpuMeter:
    """CPU time over the window, from ``start()`` to ``columns()``.

    Besides the children by process kind: the local broker (RabbitMQ's ``beam.smp``) and the
    whole machine (every core's busy time, the benchmark's own driver included). On a machine
    with few cores the sum of everything is what bounds msg/s: the broker's share is the same
    for every row, so the ratios depend on what each row adds to it.
    """

    def __init__(self, children: Children) -> None:
        self._children = children
        self._start: dict[str, float] = {}
        self._broker_start: float | None = None
        self._machine_start: float | None = None

    def start(self) -> None:
        self._start = self._children.cpu_seconds()
        self._broker_start = _broker_cpu_seconds()
        self._machine_start = _machine_busy_seconds()

    def per_message(self, count: int) -> str:
        """``"sidecar 310 + runtime 120 = 430"``: µs per message of each kind, and their sum."""
        used = {
            role: (spent - self._start.get(role, 0.0)) / count * 1e6
            for role, spent in self._children.cpu_seconds().items()
        }
        parts = {role: us for role, us in used.items() if us >= 1}
        if not parts:
            return "-"
        text = " + ".join(f"{role} {us:.0f}" for role, us in parts.items())
        return text if len(parts) == 1 else f"{text} = {sum(parts.values()):.0f}"

    def columns(self, count: int) -> dict[str, str]:
        """The table's CPU columns: the children's, the broker's and the machine's µs/msg."""
        columns = {"cpu µs/msg": self.per_message(count)}
        for name, before, now in (
            ("broker µs/msg", self._broker_start, _broker_cpu_seconds()),
            ("machine µs/msg", self._machine_start, _machine_busy_seconds()),
        ):
            spent = None if before is None or now is None else now - before
            columns[name] = "-" if spent is None else f"{spent / count * 1e6:.0f}"
        return columns


def _broker_cpu_seconds() -> float | None:
    """CPU seconds used so far by a RabbitMQ on this machine (None when there is none)."""
    try:
        import psutil
    except ImportError:
        return None
    total = None
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] == "beam.smp":
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total = (total or 0.0) + times.user + times.system
    return total


def _machine_busy_seconds() -> float | None:
    """Busy CPU seconds of every core since boot (all but idle and I/O wait)."""
    try:
        import psutil
    except ImportError:
        return None
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


class Driver(Arrivals):
    """Publishes into the system under test and watches its output queue."""

    def __init__(self, exchange: str, output_queue: str) -> None:
        super().__init__()
        self.exchange_name = exchange
        self.output_queue = output_queue
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
        self.arrived()

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
