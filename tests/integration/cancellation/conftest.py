"""A gateway and an actor for each test, on RabbitMQ and on PostgreSQL or SQLite."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import delete_rabbitmq_objects
from tests.integration.cancellation.mesh import CancelMesh


@pytest.fixture(params=["sqlite", "postgresql"])
def cancel_mesh(request: pytest.FixtureRequest, rabbitmq_url: str) -> Iterator[CancelMesh]:
    work = Path(tempfile.mkdtemp(prefix="asya-cancel-"))
    if request.param == "sqlite":
        database_url = f"sqlite:///{work / 'jobs.db'}"
    else:
        database_url = request.getfixturevalue("postgres_url")
    run = uuid.uuid4().hex[:8]
    mesh = CancelMesh(
        prefix=f"cancel-{run}",
        exchange=f"asya-cancel-{run}",
        rabbitmq_url=rabbitmq_url,
        database_url=database_url,
        work=work,
    )
    try:
        mesh.start_gateway()
        yield mesh
    finally:
        mesh.stop()
        for service in [*mesh.gateways, *mesh.actors]:
            print(f"--- {service.name} ---\n{service.log_tail(60)}")  # shown on failure
        shutil.rmtree(work, ignore_errors=True)
        delete_rabbitmq_objects(rabbitmq_url, mesh.exchange, [], prefix=f"{mesh.prefix}-")
