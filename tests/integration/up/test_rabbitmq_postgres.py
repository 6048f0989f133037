"""The same mesh on the machine's RabbitMQ and PostgreSQL instead of the embedded SQLite."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest

from tests.integration.up.conftest import PIPELINE_TOOL, UpMesh, start_mesh, stop_mesh, write_mesh


async def _delete(url: str, exchange: str, queues: list[str]) -> None:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
    finally:
        await connection.close()


@pytest.fixture
def rabbit_mesh(
    tmp_path: Path, rabbitmq_url: str, postgres_url: str, unique_name: str
) -> Iterator[UpMesh]:
    # Queue names are global on the broker: this mesh's queues, crew included, are its own.
    queues = {role: f"{unique_name}-{role}" for role in ("doubler", "incrementer")}
    crew = {
        "ASYA_STEP_HAPPY_END": f"{unique_name}-happy-end",
        "ASYA_STEP_ERROR_END": f"{unique_name}-error-end",
    }
    actors = [
        {"name": queues["doubler"], "handler": "handlers.pipeline_doubler", "timeout": "10s"},
        {"name": queues["incrementer"], "handler": "handlers.pipeline_incrementer"},
    ]
    tool = {**PIPELINE_TOOL, "route": [queues["doubler"], queues["incrementer"]]}
    mesh = {
        "transport": rabbitmq_url,
        "database": postgres_url,
        "exchange": unique_name,
        "env": crew,
        "actors": actors,
    }
    write_mesh(tmp_path, mesh, [tool])
    running = start_mesh(tmp_path)
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
