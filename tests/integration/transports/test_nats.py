"""What NATS JetStream adds to the contract: in-progress acks past the ack wait, delayed retries
kept in the stream, the stream's shape, and reconnecting after the server restarts.

The restart test runs a NATS server of its own (a free port, a temporary store), never the
machine's shared one.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from asya.transports import open_transport
from asya.transports.nats import NatsTransport

from .conftest import Backend
from .receiver import Receiver

on_nats = pytest.mark.parametrize("backend", ["nats"], indirect=True)


@on_nats
async def test_a_message_held_past_the_ack_wait_is_not_redelivered(backend: Backend) -> None:
    transport = await backend.connect(ack_wait="1s")
    queue = await backend.declared(transport)
    await transport.publish(queue, b"slow work")
    held = await Receiver(await transport.consume(queue)).get()

    other = Receiver(await (await backend.connect(ack_wait="1s")).consume(queue))
    await other.assert_nothing_within(3.0)  # three ack waits: in-progress acks keep it held
    await held.ack()
    await other.assert_nothing_within(0.5)


@on_nats
async def test_a_delayed_retry_outlives_its_publisher(backend: Backend) -> None:
    publisher = await backend.connect()
    queue = await backend.declared(publisher)
    await publisher.publish(queue, b"retry", delay=1.0)
    await publisher.close()

    consumer = await backend.connect()
    receiver = Receiver(await consumer.consume(queue))
    await receiver.assert_nothing_within(0.5)
    retry = await receiver.get(within=5)
    assert retry.body == b"retry"
    assert retry.redelivered is False  # deferring it early is not a delivery
    await retry.ack()


@on_nats
async def test_queues_are_subjects_of_one_work_queue_stream(backend: Backend) -> None:
    transport = await backend.connect()
    first = await backend.declared(transport, "a")
    second = await backend.declared(transport, "b")
    assert isinstance(transport, NatsTransport)
    info = await transport._stream_info()
    assert info is not None
    assert info["config"]["retention"] == "workqueue"
    assert sorted(info["config"]["subjects"]) == sorted(
        [f"{backend.exchange}.{first}", f"{backend.exchange}.{second}"]
    )

    await transport.delete_queue(first)
    info = await transport._stream_info()
    assert info is not None
    assert info["config"]["subjects"] == [f"{backend.exchange}.{second}"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnServer:
    """A nats-server with JetStream on a port and store of its own, restartable."""

    def __init__(self, store: Path) -> None:
        self.port = _free_port()
        self.store = store
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[OwnServer]:
    if shutil.which("nats-server") is None:
        pytest.fail("nats-server is not installed: run `make services`", pytrace=False)
    server = OwnServer(tmp_path / "jetstream")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def restartable(own_server: OwnServer) -> AsyncIterator[NatsTransport]:
    transport = open_transport(own_server.url, exchange="restart", reconnect_interval="0.2s")
    assert isinstance(transport, NatsTransport)
    await transport.connect()
    try:
        yield transport
    finally:
        await transport.close()


async def test_publish_and_consume_go_on_after_the_server_restarts(
    own_server: OwnServer, restartable: NatsTransport
) -> None:
    await restartable.declare_queue("work")
    await restartable.publish("work", b"before")
    receiver = Receiver(await restartable.consume("work"))
    held = await receiver.get()
    assert held.body == b"before"

    own_server.stop()
    await asyncio.sleep(0.5)
    restarting = asyncio.get_running_loop().run_in_executor(None, own_server.start)
    await restartable.publish("work", b"during the restart")  # retried until the server is back
    await restarting
    await held.ack()  # the consumer's state is on disk: settling still works

    after = await receiver.get(within=15)
    assert after.body == b"during the restart"
    await after.ack()
    assert await restartable.depth("work") == 0
