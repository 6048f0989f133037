"""The local mesh with SQS (moto's server) as its transport: `asya up --transport sqs://…`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.up.conftest import PIPELINE_TOOL, UpMesh, start_mesh, stop_mesh, write_mesh


@pytest.fixture
def sqs_mesh(tmp_path: Path, sqs_url: str, unique_name: str) -> Iterator[UpMesh]:
    # one prefix for every queue of this mesh, crew included, so meshes never share a queue
    actors = [
        {"name": "doubler", "handler": "handlers.pipeline_doubler", "timeout": "10s"},
        {"name": "incrementer", "handler": "handlers.pipeline_incrementer"},
    ]
    tool = {**PIPELINE_TOOL, "route": ["doubler", "incrementer"]}
    write_mesh(
        tmp_path, {"transport": f"{sqs_url}&prefix={unique_name}-", "actors": actors}, [tool]
    )
    running = start_mesh(tmp_path)
    try:
        yield running
    finally:
        stop_mesh(running)


def test_pipeline_on_sqs_returns_25(sqs_mesh: UpMesh) -> None:
    status = sqs_mesh.status()
    assert status is not None
    assert status["transport"].startswith("sqs://")

    result = sqs_mesh.call("test_pipeline", "value=10")

    assert result.returncode == 0, result.stderr + sqs_mesh.log()[-3000:]
    assert json.loads(result.stdout) == {"value": 25}
