"""Several gateway worker processes on one listening socket."""

from __future__ import annotations

import asyncio
import socket

import pytest

from asya.errors import ConfigError
from asya.gateway.settings import GatewaySettings
from asya.gateway.workers import check_workers, listening_socket


def test_several_workers_need_postgresql() -> None:
    check_workers(GatewaySettings(workers=1))
    check_workers(GatewaySettings(workers=2, database_url="postgresql://db/jobs"))
    with pytest.raises(ConfigError) as caught:
        check_workers(GatewaySettings(workers=2, database_url="sqlite:///jobs.db"))
    assert caught.value.variable == "ASYA_GATEWAY_WORKERS"


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
