"""The same mesh on the machine's RabbitMQ and PostgreSQL instead of the embedded SQLite; a
1 MiB tool argument travels by reference through the mesh's folder store
(docs/reference/jobs.md#arguments-by-reference)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import aio_pika
import pytest

from tests.integration.up.conftest import (
    BIG_TEXT,
    PIPELINE_TOOL,
    UpMesh,
    call_over_mcp,
    digest_of,
    digest_tool,
    last_job_of,
    start_mesh,
    stop_mesh,
    write_mesh,
)


async def _delete(url: str, exchange: str, queues: list[str]) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def rabbit_mesh(
    tmp_path_factory: pytest.TempPathFactory, rabbitmq_url: str, postgres_url: str, run_id: str
) -> Iterator[UpMesh]:
    folder = tmp_path_factory.mktemp("rabbit-mesh")
    unique_name = f"asya-test-{run_id}-up-rabbit"
    # Queue names are global on the broker: this mesh's queues, crew included, are its own.
    queues = {role: f"{unique_name}-{role}" for role in ("doubler", "incrementer", "digest")}
    crew = {
        "ASYA_STEP_HAPPY_END": f"{unique_name}-happy-end",
        "ASYA_STEP_ERROR_END": f"{unique_name}-error-end",
    }
    actors = [
        {"name": queues["doubler"], "handler": "handlers.pipeline_doubler", "timeout": "10s"},
        {"name": queues["incrementer"], "handler": "handlers.pipeline_incrementer"},
        {"name": queues["digest"], "handler": "handlers.digest_text", "timeout": "20s"},
    ]
    tool = {**PIPELINE_TOOL, "route": [queues["doubler"], queues["incrementer"]]}
    mesh = {
        "transport": rabbitmq_url,
        "database": postgres_url,
        "exchange": unique_name,
        "env": crew,
        "actors": actors,
    }
    write_mesh(folder, mesh, [tool, digest_tool(queues["digest"])])
    running = start_mesh(folder)
    try:
        yield running
    finally:
        stop_mesh(running)
        asyncio.run(_delete(rabbitmq_url, unique_name, [*queues.values(), *crew.values()]))


def test_pipeline_on_rabbitmq_and_postgresql_returns_25(rabbit_mesh: UpMesh) -> None:
    status = rabbit_mesh.status()
    assert status is not None
    assert status["transport"].startswith("amqp://")
    assert status["database"].startswith("postgresql://")

    result = rabbit_mesh.call("test_pipeline", "value=10")

    assert result.returncode == 0, result.stderr + rabbit_mesh.log()[-3000:]
    assert json.loads(result.stdout) == {"value": 25}
    assert "Succeeded" in result.stderr


def test_a_1_mib_tool_argument_travels_through_the_folder_store_not_rabbitmq(
    rabbit_mesh: UpMesh,
) -> None:
    result = call_over_mcp(rabbit_mesh, "test_digest", {"text": BIG_TEXT})
    assert result.is_error is False, result.content
    assert result.structured_content == digest_of(BIG_TEXT)
    job_id = last_job_of(rabbit_mesh, "test_digest")
    [stored] = (rabbit_mesh.folder / ".asya" / "payloads" / job_id).iterdir()
    assert json.loads(stored.read_bytes()) == {"text": BIG_TEXT}
