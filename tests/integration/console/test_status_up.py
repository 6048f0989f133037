"""``asya status`` inside a folder whose ``asya up`` runs: its gateway by default, and the
replicas and state of every actor from the mesh (the gateway learns where its status file is)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.helpers import asya_command, child_env
from tests.integration.up.conftest import PIPELINE_TOOL, start_mesh, stop_mesh, write_mesh

pytestmark = [pytest.mark.slow]


def test_status_in_a_mesh_folder_shows_replicas_and_state(tmp_path: Path) -> None:
    actors = [
        {"name": "test-doubler-queue", "handler": "handlers.pipeline_doubler", "replicas": 2},
        {"name": "test-incrementer-queue", "handler": "handlers.pipeline_incrementer"},
    ]
    write_mesh(tmp_path, {"actors": actors}, [PIPELINE_TOOL])
    mesh = start_mesh(tmp_path)
    try:
        job = mesh.wait_job(mesh.submit("test_pipeline", {"value": 1}))
        assert job["status"] == "Succeeded"
        env = child_env()
        env.pop("ASYA_GATEWAY_URL", None)
        done = subprocess.run(
            asya_command("status", "--json"),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        view = json.loads(done.stdout)
        assert view["gateway"] == mesh.url
        assert view["mesh"] is True
        rows = {row["queue"]: row for row in view["actors"]}
        assert (rows["test-doubler-queue"]["replicas"], rows["test-doubler-queue"]["state"]) == (
            2,
            "running",
        )
        assert rows["test-incrementer-queue"]["replicas"] == 1
        assert rows["happy-end"]["replicas"] == 1  # the crew
        assert view["jobs"]["counts"]["Succeeded"] == 1
        assert view["dead_letters"] == 0
        assert "console   " + mesh.url + "/ui" in mesh.log()
        assert httpx.get(f"{mesh.url}/ui").status_code == 200
    finally:
        stop_mesh(mesh)
