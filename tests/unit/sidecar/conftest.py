"""A sidecar on the memory transport, talking to a fake runtime that speaks the real framing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pytest

from asya.runtime import FRAME_HEADER, pack_frame
from asya.sidecar.main import Sidecar
from asya.sidecar.settings import SidecarSettings
from asya.transports.memory import MemoryTransport

DROP = object()  # the fake runtime closes the connection without answering

Behaviour = Callable[[dict[str, Any]], Awaitable[Any]]


async def echo(message: dict[str, Any]) -> Any:
    """A payload-mode runtime returning the payload unchanged."""
    return [{**message, "payload": message["payload"]}]


class FakeRuntime:
    """An asyncio Unix-socket server answering each request with ``behaviour(message)``.

    ``behaviour`` returns a list (sent as the response frame), raw ``bytes`` (sent as is) or
    ``DROP`` (connection closed without a response).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.behaviour: Behaviour = echo
        self.serial = True  # like the real runtime: one request after another
        self._lock = asyncio.Lock()
        self.requests: list[bytes] = []
        self._request_seen = asyncio.Condition()
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def wait_requests(self, count: int = 1, within: float = 5.0) -> None:
        """Wait until ``count`` requests have arrived."""
        async with asyncio.timeout(within), self._request_seen:
            await self._request_seen.wait_for(lambda: len(self.requests) >= count)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            header = await reader.readexactly(FRAME_HEADER.size)
        except asyncio.IncompleteReadError:
            writer.close()  # a readiness probe
            return
        try:
            (length,) = FRAME_HEADER.unpack(header)
            body = await reader.readexactly(length)
            async with self._lock if self.serial else contextlib.nullcontext():
                self.requests.append(body)
                async with self._request_seen:
                    self._request_seen.notify_all()
                result = await self.behaviour(orjson.loads(body))
            if result is not DROP:
                data = result if isinstance(result, bytes) else orjson.dumps(result)
                writer.write(pack_frame(data))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def make_message(
    steps: list[str], current: int = 0, payload: Any = None, **extra: Any
) -> dict[str, Any]:
    return {
        "route": {"steps": steps, "current": current, "metadata": {}},
        "payload": {"value": 1} if payload is None else payload,
        **extra,
    }


@dataclass
class Harness:
    """A running sidecar plus a client transport on the same in-memory broker."""

    settings: SidecarSettings
    runtime: FakeRuntime
    client: MemoryTransport
    sidecar: Sidecar | None = None
    task: asyncio.Task[None] | None = None
    extra_queues: list[str] = field(default_factory=list)

    @property
    def queue(self) -> str:
        return self.settings.queue_name

    async def start(self, **changes: Any) -> Sidecar:
        if changes:
            self.settings = replace(self.settings, **changes)
        self.sidecar = Sidecar(
            self.settings, transport=MemoryTransport(self.settings.transport_url[9:])
        )
        self.task = asyncio.create_task(self.sidecar.run())
        return self.sidecar

    async def wait_consuming(self, within: float = 5.0) -> None:
        assert self.sidecar is not None
        await asyncio.wait_for(self.sidecar.ready.wait(), within)

    async def stop(self, within: float = 10.0) -> None:
        if self.sidecar is not None and self.task is not None:
            self.sidecar.stop()
            await asyncio.wait_for(self.task, within)

    async def send(self, message: dict[str, Any] | bytes, queue: str | None = None) -> bytes:
        body = message if isinstance(message, bytes) else orjson.dumps(message)
        await self.client.declare_queue(queue or self.queue)
        await self.client.publish(queue or self.queue, body)
        return body

    async def declare(self, *queues: str) -> None:
        for queue in queues:
            await self.client.declare_queue(queue)

    async def take(self, queue: str, within: float = 5.0) -> dict[str, Any]:
        return orjson.loads(await self.take_raw(queue, within))  # type: ignore[no-any-return]

    async def take_raw(self, queue: str, within: float = 5.0) -> bytes:
        await self.client.declare_queue(queue)
        subscription = await self.client.consume(queue)
        try:
            async with asyncio.timeout(within):
                async for delivery in subscription:
                    await delivery.ack()
                    return delivery.body
        finally:
            await subscription.cancel()
        raise AssertionError("unreachable")

    async def depth(self, queue: str) -> int:
        await self.client.declare_queue(queue)
        return await self.client.depth(queue)


@pytest.fixture
def socket_dir() -> Iterator[str]:
    # Unix socket paths are limited to ~108 bytes: keep them short, away from tmp_path.
    folder = tempfile.mkdtemp(prefix="asya-sc-")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def fake_runtime(socket_dir: str) -> AsyncIterator[FakeRuntime]:
    runtime = FakeRuntime(f"{socket_dir}/rt.sock")
    await runtime.start()
    yield runtime
    await runtime.stop()


@pytest.fixture
async def harness(fake_runtime: FakeRuntime) -> AsyncIterator[Harness]:
    broker = f"sc-{uuid.uuid4().hex[:8]}"
    settings = SidecarSettings(
        queue_name="step-a",
        transport_url=f"memory://{broker}",
        socket_path=fake_runtime.path,
        runtime_timeout=2.0,
        metrics_enabled=False,
        retry_backoff=0.05,
    )
    client = MemoryTransport(broker)
    await client.connect()
    await client.declare_queue("step-b")
    h = Harness(settings=settings, runtime=fake_runtime, client=client)
    yield h
    if h.sidecar is not None and h.task is not None and not h.task.done():
        h.sidecar.stop()
        try:
            await asyncio.wait_for(h.task, 10)
        except Exception:
            h.task.cancel()
    await client.close()
