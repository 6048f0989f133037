"""``asya gateway`` and ``asya gateway migrate`` as real processes (PostgreSQL, RabbitMQ)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import orjson
import psutil
import pytest

from asya.transports import open_transport
from tests.helpers import asya_command, child_env, free_port, stop_process, wait_until
from tests.integration.gateway.conftest import serve_gateway


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        stop_process(proc)


def _run(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        asya_command(*args), env=child_env(env), capture_output=True, text=True, timeout=timeout
    )


async def test_migrate_creates_the_tables_once_and_is_idempotent(fresh_postgres_url: str) -> None:
    url = fresh_postgres_url.replace("postgresql://", "postgres://", 1)
    env = {"ASYA_DATABASE_URL": url}
    first = await asyncio.to_thread(_run, ["gateway", "migrate"], env)
    assert first.returncode == 0, first.stderr
    assert "0004" in first.stdout
    second = await asyncio.to_thread(_run, ["gateway", "migrate"], env)
    assert second.returncode == 0, second.stderr
    conn = await asyncpg.connect(fresh_postgres_url)
    try:
        tables = {
            row["tablename"]
            for row in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        kinds = {
            row["column_name"]: row["data_type"]
            for row in await conn.fetch(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'jobs'"
            )
        }
    finally:
        await conn.close()
    assert {"jobs", "job_updates", "alembic_version"} <= tables
    assert kinds["payload"] == "jsonb"


def test_migrate_against_an_unreachable_database_exits_1() -> None:
    result = _run(
        ["gateway", "migrate"],
        {"ASYA_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none"},
    )
    assert result.returncode == 1
    assert "database unavailable" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ASYA_DATABASE_URL", "mysql://db/jobs"),
        ("ASYA_GATEWAY_PORT", "eighty"),
        ("ASYA_DB_AUTO_MIGRATE", "perhaps"),
        ("ASYA_GATEWAY_MAX_BODY", "-1"),
        ("ASYA_GATEWAY_WORKERS", "0"),
        ("ASYA_GATEWAY_WORKERS", "2"),  # with the default SQLite database
    ],
)
def test_a_bad_setting_exits_2_naming_the_variable(variable: str, value: str) -> None:
    result = _run(["gateway"], {variable: value})
    assert result.returncode == 2
    assert variable in result.stderr


def test_a_broken_tools_file_exits_2_naming_the_tool(tmp_path: Path) -> None:
    tools = tmp_path / "tools.yaml"
    tools.write_text(
        "tools:\n  - {name: alpha, route: [a]}\n  - {name: beta, route: [], timeout: 3}\n"
    )
    result = _run(
        ["gateway"],
        {"ASYA_CONFIG_PATH": str(tools), "ASYA_DATABASE_URL": f"sqlite:///{tmp_path}/j.db"},
    )
    assert result.returncode == 2
    assert "beta" in result.stderr
    assert "route is empty" in result.stderr


async def test_the_gateway_process_publishes_to_rabbitmq_and_stops_cleanly(
    tmp_path: Path,
    postgres_url: str,
    rabbitmq_url: str,
    unique_name: str,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    queue = f"{unique_name}-first"
    tools = tmp_path / "tools.yaml"
    tools.write_text(
        f"tools:\n  - name: echo\n    parameters: {{text: {{type: string, required: true}}}}\n"
        f"    route: [{queue}]\n    timeout: 60\n"
    )
    broker = open_transport(rabbitmq_url, exchange=unique_name)
    await broker.connect()
    try:
        await broker.declare_queue(queue)
        port = free_port()
        proc = subprocess.Popen(  # noqa: ASYNC220 - starts a server; Popen does not wait
            asya_command("gateway"),
            env=child_env(
                {
                    "ASYA_GATEWAY_HOST": "127.0.0.1",
                    "ASYA_GATEWAY_PORT": str(port),
                    "ASYA_CONFIG_PATH": str(tools),
                    "ASYA_DATABASE_URL": postgres_url,
                    "ASYA_RABBITMQ_URL": rabbitmq_url,
                    "ASYA_RABBITMQ_EXCHANGE": unique_name,
                }
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            try:
                return httpx.get(f"{url}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        await asyncio.to_thread(wait_until, healthy, 30, 0.1, "the gateway's /health")
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.get("/ready")).status_code == 200
            response = await client.post(
                "/tools/call", json={"name": "echo", "arguments": {"text": "hello"}}
            )
            assert response.status_code == 200, response.text
            job_id = response.json()["structuredContent"]["job_id"]
        subscription = await broker.consume(queue)
        async with asyncio.timeout(10):
            async for message in subscription:
                await message.ack()
                break
        await subscription.cancel()
        body = orjson.loads(message.body)
        assert body["job_id"] == job_id
        assert body["payload"] == {"text": "hello"}
        assert body["route"]["metadata"]["job_id"] == job_id
        # SIGTERM with a stream open: the stream ends at once and the process exits 0 quickly
        async with (
            httpx.AsyncClient(base_url=url, timeout=30) as client,
            client.stream("GET", f"/jobs/{job_id}/stream") as stream,
        ):
            lines = stream.aiter_lines()
            assert await anext(lines) == "event: status"
            proc.terminate()
            async for _ in lines:
                pass
        assert await asyncio.to_thread(proc.wait, 20) == 0
        assert proc.stdout is not None
        # uvicorn says so when an open stream held the shutdown until its 5 s grace ran out
        assert "graceful shutdown exceeded" not in proc.stdout.read().decode()
    finally:
        await broker.delete_queue(queue)
        delete_exchange = getattr(broker, "delete_exchange", None)
        if delete_exchange is not None:
            await delete_exchange()
        await broker.close()


async def test_auto_migrate_off_leaves_the_database_alone(fresh_postgres_url: str) -> None:
    async with serve_gateway(fresh_postgres_url, auto_migrate=False) as gateway:
        response = await gateway.client.post(
            "/tools/call", json={"name": "test_echo", "arguments": {"message": "m"}}
        )
        assert response.status_code == 503
        assert "asya gateway migrate" in response.json()["error"]
    conn = await asyncpg.connect(fresh_postgres_url)
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
    finally:
        await conn.close()
    assert tables == []


async def test_two_workers_share_the_port_and_each_others_sse_updates(
    tmp_path: Path,
    fresh_postgres_url: str,
    rabbitmq_url: str,
    unique_name: str,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    queue = f"{unique_name}-first"
    tools = tmp_path / "tools.yaml"
    tools.write_text(f"tools:\n  - name: noop\n    route: [{queue}]\n    timeout: 60\n")
    broker = open_transport(rabbitmq_url, exchange=unique_name)
    await broker.connect()
    try:
        await broker.declare_queue(queue)
        port = free_port()
        proc = subprocess.Popen(  # noqa: ASYNC220 - starts a server; Popen does not wait
            asya_command("gateway"),
            env=child_env(
                {
                    "ASYA_GATEWAY_WORKERS": "2",
                    "ASYA_GATEWAY_HOST": "127.0.0.1",
                    "ASYA_GATEWAY_PORT": str(port),
                    "ASYA_CONFIG_PATH": str(tools),
                    "ASYA_DATABASE_URL": fresh_postgres_url,
                    "ASYA_RABBITMQ_URL": rabbitmq_url,
                    "ASYA_RABBITMQ_EXCHANGE": unique_name,
                    "ASYA_GATEWAY_PUBLISH_CONNECTIONS": "1",
                }
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"

        def both_ready() -> bool:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            workers = [
                child
                for child in psutil.Process(proc.pid).children()
                if "spawn_main" in " ".join(child.cmdline())
            ]
            try:  # a new connection per probe, so the kernel may hand it to either worker
                ready = all(httpx.get(f"{url}/ready", timeout=2).status_code == 200 for _ in "ab")
            except httpx.HTTPError:
                return False
            return len(workers) == 2 and ready

        await asyncio.to_thread(wait_until, both_ready, 60, 0.2, "two ready gateway workers")
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            created = [
                (await client.post("/tools/call", json={"name": "noop"})).json() for _ in range(6)
            ]
        job_id = created[0]["structuredContent"]["job_id"]
        # the stream and the reports travel on separate connections (possibly other workers)
        async with (
            httpx.AsyncClient(base_url=url, timeout=30) as reader,
            reader.stream("GET", f"/jobs/{job_id}/stream") as stream,
        ):
            lines = stream.aiter_lines()
            assert await anext(lines) == "event: status"
            assert await anext(lines) == "data: Running"
            for status in ("received", "completed"):
                async with httpx.AsyncClient(base_url=url, timeout=10) as actor:
                    report = {"step_index": 0, "total_steps": 1, "status": status}
                    answer = await actor.post(f"/jobs/{job_id}/progress", json=report)
                    assert answer.status_code == 200, answer.text
            async with httpx.AsyncClient(base_url=url, timeout=10) as crew:
                final = {"status": "succeeded", "result": {"ok": True}}
                assert (await crew.post(f"/jobs/{job_id}/final", json=final)).status_code == 200
            data = [orjson.loads(line[5:]) async for line in lines if line.startswith("data:")]
        assert [update["progress_percent"] for update in data] == [0, 10, 100, 100]
        assert data[-1]["status"] == "Succeeded"
        assert await broker.depth(queue) == 6
        proc.terminate()
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        await broker.delete_queue(queue)
        delete_exchange = getattr(broker, "delete_exchange", None)
        if delete_exchange is not None:
            await delete_exchange()
        await broker.close()
