"""README's "Your first actor", run as a user would: in a folder of their own outside the clone,
with plain ``asya …`` commands found on PATH (the venv's bin; nothing new is installed)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO_ROOT, child_env, free_port
from tests.integration.up.conftest import UpMesh, stop_mesh

FENCE = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def first_actor_blocks() -> list[tuple[str, str]]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Your first actor", 1)[1].split("\n## ", 1)[0]
    return FENCE.findall(section)


def commands(block: str) -> list[str]:
    """The command lines of a bash block, without their comments."""
    lines = (line.split("  #", 1)[0].strip() for line in block.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_the_first_actor_runs_from_a_folder_of_ones_own(tmp_path: Path) -> None:
    folder = tmp_path / "my-pipeline"
    folder.mkdir()
    assert not folder.resolve().is_relative_to(REPO_ROOT)
    blocks = first_actor_blocks()
    install, run = (commands(body) for kind, body in blocks if kind == "bash")
    assert any(line.startswith("pip install") and "asya[all]" in line for line in install)
    for kind, body in blocks:
        if kind in ("python", "yaml"):  # "# my_actors.py — …": the file to write
            name = body.splitlines()[0].lstrip("# ").split()[0]
            (folder / name).write_text(body, encoding="utf-8")
    port = free_port()  # the README's 8080 may be taken on a shared machine
    config = folder / "asya.yaml"
    config.write_text(config.read_text().replace("port: 8080", f"port: {port}"))

    venv_bin = Path(sys.executable).parent
    env = child_env(
        {
            "PATH": os.pathsep.join([str(venv_bin), os.environ.get("PATH", "")]),
            "ASYA_GATEWAY_URL": f"http://127.0.0.1:{port}",
        }
    )
    asya = shutil.which("asya", path=env["PATH"])
    assert asya is not None
    assert Path(asya).parent == venv_bin
    up, call, jobs, status = run
    assert up.split() == ["asya", "up"]
    log_path = folder / "up.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            shlex.split(up), cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    mesh = UpMesh(folder, port, proc, log_path)
    try:
        mesh.wait_ready()
        called = subprocess.run(
            shlex.split(call), cwd=folder, env=env, capture_output=True, text=True, timeout=60
        )
        assert called.returncode == 0, called.stderr + mesh.log()[-3000:]
        assert json.loads(called.stdout) == {"text": "HELLO"}
        listed = subprocess.run(
            shlex.split(jobs), cwd=folder, env=env, capture_output=True, text=True, timeout=30
        )
        assert listed.returncode == 0, listed.stderr
        assert "shout" in listed.stdout
        assert "Succeeded" in listed.stdout
        shown = subprocess.run(
            shlex.split(status), cwd=folder, env=env, capture_output=True, text=True, timeout=30
        )
        assert shown.returncode == 0, shown.stderr
        assert "shout" in shown.stdout
    finally:
        assert stop_mesh(mesh) == 0
    assert "mesh ready" in mesh.log()
