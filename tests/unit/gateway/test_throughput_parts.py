"""The pieces that make job creation fast: publishing lanes, precompiled statements, workers."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

import orjson
import pytest

from asya.errors import ConfigError, TransportError, UnroutableError
from asya.gateway import statements as sql
from asya.gateway.database import create_engine, ssl_mode
from asya.gateway.driver import DriverStatement
from asya.gateway.listener import asyncpg_dsn
from asya.gateway.publisher import Publisher
from asya.gateway.settings import GatewaySettings
from asya.gateway.workers import check_workers, listening_socket
from asya.transports.base import Subscription, Transport


class SlowTransport(Transport):
    """Records publishes; each takes a moment, so concurrent ones overlap."""

    name = "slow"

    def __init__(self, fail: BaseException | None = None) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.connected = False
        self.fail = fail

    async def connect(self) -> None:
        self.connected = True

    async def close(self) -> None:
        self.connected = False

    async def publish(self, queue: str, body: bytes, *, delay: float = 0.0) -> None:
        await asyncio.sleep(0.01)
        if self.fail is not None:
            raise self.fail
        self.published.append((queue, body))

    async def consume(self, queue: str, *, prefetch: int = 1) -> Subscription:
        raise NotImplementedError

    async def declare_queue(self, queue: str) -> None:
        raise NotImplementedError

    async def depth(self, queue: str) -> int:
        raise NotImplementedError

    async def purge(self, queue: str) -> int:
        raise NotImplementedError

    async def delete_queue(self, queue: str) -> None:
        raise NotImplementedError


@pytest.fixture
def lanes() -> list[SlowTransport]:
    return [SlowTransport() for _ in range(3)]


async def test_concurrent_publishes_are_spread_over_every_lane(lanes: list[SlowTransport]) -> None:
    publisher = Publisher(lanes, concurrency=20)
    await publisher.start()
    await asyncio.gather(*(publisher.publish("q", {"n": n}) for n in range(12)))
    assert [len(lane.published) for lane in lanes] == [4, 4, 4]
    received = sorted(orjson.loads(body)["n"] for lane in lanes for _, body in lane.published)
    assert received == list(range(12))
    assert publisher.transport is lanes[0]
    await publisher.close()
    assert not any(lane.connected for lane in lanes)


async def test_a_failed_publish_raises_a_transport_error_naming_the_queue() -> None:
    broken = Publisher([SlowTransport(fail=RuntimeError("socket closed"))])
    with pytest.raises(TransportError, match="publish to 'q' failed: socket closed"):
        await broken.publish("q", {})
    with pytest.raises(UnroutableError):
        await Publisher([SlowTransport(fail=UnroutableError("q"))]).publish("q", {})


def test_a_publisher_needs_a_lane() -> None:
    with pytest.raises(ValueError, match="at least one transport"):
        Publisher([])


def test_compiled_statements_encode_json_and_keep_their_constants() -> None:
    engine = create_engine("postgresql://postgres@127.0.0.1/never-connected")
    insert = DriverStatement.compile(sql.INSERT_JOB, engine.dialect, sql.INSERT_JOB_COLUMNS)
    assert insert.sql.startswith("INSERT INTO jobs (")
    assert insert.names == sql.INSERT_JOB_COLUMNS
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    values = {name: None for name in sql.INSERT_JOB_COLUMNS}
    values |= {"id": "j1", "route_steps": ["a", "b"], "payload": {"x": 1}, "created_at": now}
    arguments = dict(zip(insert.names, insert.arguments(values), strict=True))
    assert orjson.loads(arguments["route_steps"]) == ["a", "b"]
    assert orjson.loads(arguments["payload"]) == {"x": 1}
    assert arguments["created_at"] == now
    assert arguments["id"] == "j1"

    running = DriverStatement.compile(sql.NOTIFYING[sql.MARK_RUNNING], engine.dialect)
    assert running.sql.count("$") >= len(running.names)
    assert running.constants  # the status, the channel name, the NOTIFY limit …
    assert "Running" in running.constants.values()
    with pytest.raises(KeyError):
        running.arguments({})  # a missing parameter is a programming error, caught at once


def test_several_workers_need_postgresql() -> None:
    check_workers(GatewaySettings(workers=1))
    check_workers(GatewaySettings(workers=2, database_url="postgresql://db/jobs"))
    with pytest.raises(ConfigError) as caught:
        check_workers(GatewaySettings(workers=2, database_url="sqlite:///jobs.db"))
    assert caught.value.variable == "ASYA_GATEWAY_WORKERS"


@pytest.mark.parametrize("option", ["sslmode", "ssl"])
def test_an_ssl_mode_in_the_url_reaches_both_drivers_in_their_spelling(option: str) -> None:
    url = f"postgresql://u@h/db?application_name=gw&{option}=disable"
    assert ssl_mode(url) == ("postgresql://u@h/db?application_name=gw", "disable")
    assert asyncpg_dsn(url) == "postgresql://u@h/db?application_name=gw&sslmode=disable"
    assert ssl_mode("postgresql://u@h/db") == ("postgresql://u@h/db", None)
    assert asyncpg_dsn("postgres://u@h/db") == "postgresql://u@h/db"


async def test_connections_accepted_on_the_workers_socket_have_nagle_turned_off() -> None:
    sock = listening_socket("127.0.0.1", 0)
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            conn = transport.get_extra_info("socket")
            accepted.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    try:
        port = sock.getsockname()[1]
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(accepted, 5) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
