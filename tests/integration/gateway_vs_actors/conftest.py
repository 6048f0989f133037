"""One mesh for the whole suite, started in parallel and torn down even when a test fails.

Gateways: ``gateway`` (the one actors report to), ``replica`` (a second process on the same
database: streams must show the first one's updates), ``guarded`` (API keys, its own database,
used to take the database away). Every actor and crew member is ``asya actor``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import POSTGRES_ADMIN_URL
from tests.helpers import asya_command, child_env
from tests.integration.gateway_vs_actors.mesh import (
    ACTOR_SPECS,
    API_KEYS,
    Mesh,
    actor_service,
    gateway_service,
    listen_port,
    s3_client,
    write_tools_file,
)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _declare_unanswered(url: str, exchange: str, queue: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        declared = await channel.declare_queue(queue, durable=True)
        await declared.bind(ex, routing_key=queue)


async def _delete_broker_objects(url: str, exchange: str, queues: list[str]) -> None:
    import aio_pika

    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue)
        with contextlib.suppress(Exception):
            await channel.exchange_delete(exchange)


def _migrate(database_url: str, work: Path, name: str) -> subprocess.Popen[bytes]:
    log = (work / f"migrate-{name}.log").open("wb")
    return subprocess.Popen(
        asya_command("gateway", "migrate"),
        env=child_env({"ASYA_DATABASE_URL": database_url}),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server, where the crew persists outcomes."""
    from moto.server import ThreadedMotoServer

    port = listen_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mesh(
    request: pytest.FixtureRequest,
    run_id: str,
    rabbitmq_url: str,
    postgres_url: str,
    s3_endpoint: str,
) -> Iterator[Mesh]:
    work = Path(tempfile.mkdtemp(prefix=f"asya-gva-{run_id}-"))
    bucket = f"asya-gva-{run_id}"
    s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    prefix = f"gva-{run_id}"
    exchange = f"asya-test-{run_id}"
    guarded_db = f"asya_test_{run_id}_guarded"
    guarded_url = f"{postgres_url.rsplit('/', 1)[0]}/{guarded_db}"
    common = {
        "ASYA_RABBITMQ_URL": rabbitmq_url,
        "ASYA_RABBITMQ_EXCHANGE": exchange,
        "ASYA_STEP_HAPPY_END": f"{prefix}-happy-end",
        "ASYA_STEP_ERROR_END": f"{prefix}-error-end",
    }
    tools = work / "tools.yaml"
    write_tools_file(tools, prefix)

    gateway = gateway_service(
        "gateway", postgres_url, common, tools, work, ASYA_DB_AUTO_MIGRATE="false"
    )
    replica = gateway_service(
        "replica",
        postgres_url,
        common,
        tools,
        work,
        ASYA_DB_AUTO_MIGRATE="false",
        ASYA_GATEWAY_MAX_BODY="65536",
    )
    guarded = gateway_service(
        "guarded", guarded_url, common, tools, work, ASYA_GATEWAY_API_KEYS=",".join(API_KEYS)
    )
    crew_s3 = {
        "ASYA_S3_BUCKET": bucket,
        "ASYA_S3_ENDPOINT": s3_endpoint,
        "ASYA_S3_ACCESS_KEY": "test",
        "ASYA_S3_SECRET_KEY": "test",
    }
    actors = {
        role: actor_service(
            role, prefix, common, gateway.url, work, crew_s3 if role.endswith("-end") else {}
        )
        for role in ACTOR_SPECS
    }
    built = Mesh(
        prefix=prefix,
        exchange=exchange,
        rabbitmq_url=rabbitmq_url,
        database_url=postgres_url,
        tools_path=tools,
        gateway=gateway,
        replica=replica,
        guarded=guarded,
        guarded_database=guarded_db,
        s3_endpoint=s3_endpoint,
        s3_bucket=bucket,
        actors=actors,
    )
    services = [*actors.values(), gateway, replica, guarded]
    asyncio.run(_admin(f'CREATE DATABASE "{guarded_db}"'))
    try:
        asyncio.run(_declare_unanswered(rabbitmq_url, exchange, built.queue("unanswered")))
        migrate = _migrate(postgres_url, work, "main")
        for actor in actors.values():
            actor.start()
        guarded.start()
        code = migrate.wait(120)
        assert code == 0, (work / "migrate-main.log").read_text()
        gateway.start()
        replica.start()
        for service in services:
            service.wait_ready(timeout=90)
        yield built
    finally:
        for service in services:  # SIGTERM all first, so they shut down in parallel
            if service.alive():
                assert service.proc is not None
                service.proc.terminate()
        for service in services:
            service.stop()
        queues = [built.queue(role) for role in (*ACTOR_SPECS, "unanswered")]
        asyncio.run(_delete_broker_objects(rabbitmq_url, exchange, queues))
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{guarded_db}" WITH (FORCE)'))
        if request.session.testsfailed:
            print(f"\ngateway_vs_actors: process logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
async def client(mesh: Mesh) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=mesh.url, timeout=30) as http:
        yield http
