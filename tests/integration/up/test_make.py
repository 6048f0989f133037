"""The newcomer's path (docs/contributing.md#the-newcomers-path): the `make demo` script; `make
install` on a bare machine."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, child_env

# Stands in for a Debian python3 without python3-venv: venv leaves a .venv/bin/python behind,
# then fails because ensurepip is missing.
PYTHON_WITHOUT_VENV = """#!/bin/sh
mkdir -p .venv/bin && printf '#!/bin/sh\\nexit 1\\n' > .venv/bin/python && chmod +x .venv/bin/python
echo "ensurepip is not available" >&2
exit 1
"""


def test_the_demo_script_runs_the_quickstart_pipeline_to_25() -> None:
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "demo.sh")],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert 'Succeeded with result {"value": 25}' in result.stdout
    assert "demo: web console: http://127.0.0.1:" in result.stdout
    assert "dead letters:" in result.stdout  # asya status ran
    assert result.stdout.rstrip().endswith("demo: done")


def test_a_failed_venv_creation_is_explained_and_leaves_no_half_made_venv(tmp_path: Path) -> None:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    python = tmp_path / "python-without-venv"
    python.write_text(PYTHON_WITHOUT_VENV)
    python.chmod(0o755)

    result = subprocess.run(
        ["make", "install", f"PYTHON={python}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "apt-get install python3-venv" in result.stderr
    # a leftover .venv/bin/python would make the next `make` skip venv creation and fail in pip
    assert not (tmp_path / ".venv").exists()


@pytest.mark.services
def test_ensure_services_trusts_an_open_rabbitmq_port(tmp_path: Path) -> None:
    # rabbitmq-diagnostics run by a user without the node's Erlang cookie fails although the
    # broker serves; the script must not try to start a second node then.
    for tool, code in (("rabbitmq-diagnostics", 1), ("rabbitmq-server", 0)):
        fake = tmp_path / tool
        fake.write_text(f'#!/bin/sh\necho "$0 $*" >> {tmp_path}/calls\nexit {code}\n')
        fake.chmod(0o755)
    env = child_env({"PATH": f"{tmp_path}:{child_env()['PATH']}"})

    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "ensure-services.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "PostgreSQL, RabbitMQ and NATS are up" in result.stdout
    assert not (tmp_path / "calls").exists()  # neither asked nor started
