"""``asya up`` at start-up: a missing PostgreSQL database is created (and said so), a broker that
is not there stops it with one clear line and exit 1."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import asyncpg

from tests.helpers import asya_command, child_env, free_port, stop_process, wait_until

ASYA_YAML = """
gateway: {{port: {port}, tools: tools.yaml}}
actors:
  - {{name: echo-{suffix}, handler: handlers.echo}}
"""


def make_mesh(folder: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    (folder / "handlers.py").write_text("def echo(payload):\n    return payload\n")
    (folder / "tools.yaml").write_text(f"tools:\n  - name: echo\n    route: [echo-{suffix}]\n")
    (folder / "asya.yaml").write_text(ASYA_YAML.format(port=free_port(), suffix=suffix))


def test_up_creates_a_missing_postgresql_database(tmp_path: Path) -> None:
    make_mesh(tmp_path)
    name = f"asya_up_{uuid.uuid4().hex[:8]}"
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            asya_command("up", "--database", f"postgresql://127.0.0.1/{name}"),
            cwd=tmp_path,
            env=child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until(lambda: "Press Ctrl-C" in log.read_text(), timeout=60, what="mesh ready")
        finally:
            code = stop_process(proc, timeout=20)
    output = log.read_text()
    try:
        assert f"created the jobs database postgresql://127.0.0.1/{name}" in output
        assert "Traceback" not in output
        assert code == 0
    finally:
        asyncio.run(_drop(name))


async def _drop(name: str) -> None:
    admin = await asyncpg.connect("postgresql://127.0.0.1/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def test_up_with_no_broker_on_that_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    make_mesh(tmp_path)
    port = free_port()
    result = subprocess.run(
        asya_command("up", "--transport", f"amqp://guest:guest@127.0.0.1:{port}/"),
        cwd=tmp_path,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" not in output
    assert " ERROR " not in output
    problems = [line for line in output.splitlines() if "cannot start" in line]
    assert len(problems) == 1
    assert f"127.0.0.1:{port}" in problems[0]
