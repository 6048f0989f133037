"""Gateway apps served by a real uvicorn on a free port, against SQLite or PostgreSQL.

Publishing goes through the in-process memory transport (a broker per test), so a test can
read exactly what the gateway sent to the first actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import uvicorn
import yaml

from asya.gateway.app import create_app
from asya.gateway.settings import GatewaySettings
from asya.gateway.tools import parse_tools
from asya.transports import open_transport
from asya.transports.base import Transport
from tests.helpers import free_port

TOOLS_YAML = """
defaults: {progress: true, timeout: 30}
routes: {two-step: [step-a, step-b]}
tools:
  - name: test_pipeline
    description: Double then add five
    parameters:
      value: {type: integer, description: the input, required: true}
      mode: {type: string, options: [fast, slow], default: fast}
    route: two-step
    timeout: 10
  - name: test_echo
    parameters:
      message: {type: string, required: true}
    route: [step-a]
  - name: test_wait
    parameters:
      value: {type: integer, required: true}
    route: [step-a]
    timeout: 20
    wait: true
  - name: test_short
    route: [step-a]
    timeout: 1
  - name: test_unroutable
    route: [no-such-queue]
"""
QUEUES = ("step-a", "step-b")


@dataclasses.dataclass
class RunningGateway:
    url: str
    client: httpx.AsyncClient
    broker: Transport
    database_url: str

    async def call(self, name: str, **arguments: Any) -> str:
        response = await self.client.post(
            "/tools/call", json={"name": name, "arguments": arguments}
        )
        assert response.status_code == 200, response.text
        job_id: str = response.json()["structuredContent"]["job_id"]
        return job_id

    async def progress(self, job_id: str, index: int, status: str, total: int = 2) -> float:
        response = await self.client.post(
            f"/jobs/{job_id}/progress",
            json={
                "step": QUEUES[index] if index < len(QUEUES) else f"s{index}",
                "step_index": index,
                "total_steps": total,
                "status": status,
                "actor_name": "actor",
                "message": f"{status} at {index}",
            },
        )
        assert response.status_code == 200, response.text
        percent: float = response.json()["progress_percent"]
        return percent

    async def job(self, job_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def sent(self, queue: str = "step-a") -> dict[str, Any]:
        """The next message the gateway published to ``queue``."""
        subscription = await self.broker.consume(queue)
        try:
            async with asyncio.timeout(5):
                async for message in subscription:
                    await message.ack()
                    data: dict[str, Any] = orjson.loads(message.body)
                    return data
        finally:
            await subscription.cancel()
        raise AssertionError("no message")


GatewayFactory = Callable[..., contextlib.AbstractAsyncContextManager[RunningGateway]]


@contextlib.asynccontextmanager
async def serve_gateway(
    database_url: str,
    *,
    broker_name: str | None = None,
    tools_yaml: str = TOOLS_YAML,
    **overrides: Any,
) -> AsyncIterator[RunningGateway]:
    broker_name = broker_name or uuid.uuid4().hex
    settings = dataclasses.replace(
        GatewaySettings(database_url=database_url, transport_url=f"memory://{broker_name}"),
        **overrides,
    )
    broker = open_transport(f"memory://{broker_name}")
    await broker.connect()
    for queue in QUEUES:
        await broker.declare_queue(queue)
    app = create_app(settings, tools=parse_tools(yaml.safe_load(tools_yaml)))
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise AssertionError("gateway exited before it started")
                await asyncio.sleep(0.02)
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield RunningGateway(url, client, broker, database_url)
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)
        await broker.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'jobs.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs on SQLite and on the shared per-run PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def fresh_postgres_url(postgres_url: str) -> AsyncIterator[str]:
    """A PostgreSQL database of this test alone (for listings that must see only its jobs)."""
    base, _, _ = postgres_url.rpartition("/")
    name = f"asya_gw_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(f"{base}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield f"{base}/{name}"
    admin = await asyncpg.connect(f"{base}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def gateway(database_url: str) -> AsyncIterator[RunningGateway]:
    async with serve_gateway(database_url) as running:
        yield running


@dataclasses.dataclass
class Event:
    event: str | None
    data: str
    id: str | None = None

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads(self.data)
        return data


async def read_events(
    client: httpx.AsyncClient,
    job_id: str,
    *,
    headers: dict[str, str] | None = None,
    on_open: Callable[[], Any] | None = None,
    limit: float = 15.0,
) -> list[Event]:
    """Every event of the job's SSE stream until the server closes it (within ``limit`` s)."""
    events: list[Event] = []
    async with asyncio.timeout(limit):
        async with client.stream("GET", f"/jobs/{job_id}/stream", headers=headers) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            fields: dict[str, str] = {}
            opened = False
            async for line in response.aiter_lines():
                if line == "":
                    if "data" in fields:
                        events.append(Event(fields.get("event"), fields["data"], fields.get("id")))
                        if not opened and on_open is not None:
                            opened = True
                            result = on_open()
                            if asyncio.iscoroutine(result):
                                await result
                    fields = {}
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
    return events


async def eventually(
    check: Callable[[], Awaitable[Any]], *, limit: float = 5.0, interval: float = 0.1
) -> Any:
    """Await ``check()`` until it returns a truthy value (AssertionError after ``limit`` s)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > end:
            raise AssertionError(f"condition not met within {limit} s")
        await asyncio.sleep(interval)


async def waiting_call_rows(database_url: str, job_id: str) -> int:
    """Rows of ``mcp_waiting_calls`` for ``job_id``: its MCP calls now waiting."""
    query = "SELECT count(*) FROM mcp_waiting_calls WHERE job_id = "
    if database_url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as db:
            count: int = db.execute(query + "?", (job_id,)).fetchone()[0]
            return count
    conn = await asyncpg.connect(database_url)
    try:
        count = await conn.fetchval(query + "$1", job_id)
    finally:
        await conn.close()
    return count
