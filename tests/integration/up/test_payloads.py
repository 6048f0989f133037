"""``asya up`` keeps large payloads in ``.asya/payloads`` (the file store): the next actor still
receives the real payload (docs/reference/sidecar.md#payloads-by-reference)."""

from __future__ import annotations

import json

import pytest

from tests.integration.up.conftest import start_mesh, stop_mesh, write_mesh

pytestmark = pytest.mark.timeout(180)


def test_a_1_mib_payload_travels_through_the_file_store(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    folder = tmp_path_factory.mktemp("payloads-mesh")
    actors = [
        {"name": "test-make-big-queue", "handler": "handlers.make_big", "timeout": "10s"},
        {"name": "test-measure-big-queue", "handler": "handlers.measure_big", "timeout": "10s"},
    ]
    tool = {
        "name": "test_big",
        "description": "Make a big payload, then measure it",
        "parameters": {"size": {"type": "integer", "required": True}},
        "route": ["test-make-big-queue", "test-measure-big-queue"],
        "timeout": 60,
    }
    write_mesh(folder, {"actors": actors}, [tool])
    mesh = start_mesh(folder)
    try:
        result = mesh.call("test_big", f"size={1024 * 1024}")
        assert result.returncode == 0, result.stderr + mesh.log()[-3000:]
        assert json.loads(result.stdout) == {"length": 1024 * 1024}
        stored = [p for p in (folder / ".asya" / "payloads").rglob("*") if p.is_file()]
        assert len(stored) == 1  # make-big's output; measure's answer is small
        assert stored[0].stat().st_size > 1024 * 1024
    finally:
        stop_mesh(mesh)
