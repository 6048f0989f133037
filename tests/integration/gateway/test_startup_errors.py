"""Expected start-up errors are one line on stderr, no traceback, and the documented exit code
(docs/reference/cli.md): a missing database, a taken port, a missing or invalid tools file, a
broker that refuses the login, for ``asya gateway`` and ``asya sidecar``."""

from __future__ import annotations

import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import asya_command, child_env, free_port

TOOLS = "tools:\n  - name: echo\n    route: [echo]\n"
BAD_LOGIN = "amqp://guest:wrong-password@127.0.0.1:5672/"


def run_quietly(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        asya_command(*args),
        env=child_env({"ASYA_LOG_LEVEL": "WARNING", **env}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0]
    assert result.returncode == code, output


@pytest.fixture
def gateway_env(tmp_path: Path) -> dict[str, str]:
    tools = tmp_path / "tools.yaml"
    tools.write_text(TOOLS)
    return {
        "ASYA_DATABASE_URL": f"sqlite:///{tmp_path / 'jobs.db'}",
        "ASYA_CONFIG_PATH": str(tools),
        "ASYA_TRANSPORT_URL": "amqp://guest:guest@127.0.0.1:5672/",
        "ASYA_GATEWAY_HOST": "127.0.0.1",
        "ASYA_GATEWAY_PORT": str(free_port()),
    }


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield int(listener.getsockname()[1])


def test_gateway_on_a_database_that_does_not_exist(gateway_env: dict[str, str]) -> None:
    name = f"asya_missing_{uuid.uuid4().hex[:8]}"
    result = run_quietly(
        ["gateway"], {**gateway_env, "ASYA_DATABASE_URL": f"postgresql://127.0.0.1/{name}"}
    )
    assert_one_line(result, 1, "asya gateway:", name, "does not exist", "createdb")


def test_gateway_on_a_port_in_use(gateway_env: dict[str, str], taken_port: int) -> None:
    result = run_quietly(["gateway", "--port", str(taken_port)], gateway_env)
    assert_one_line(result, 1, "asya gateway:", str(taken_port), "already in use")


def test_gateway_with_a_missing_tools_file(gateway_env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = run_quietly(["gateway"], {**gateway_env, "ASYA_CONFIG_PATH": str(missing)})
    assert_one_line(result, 2, "asya gateway:", str(missing), "No such file")


def test_gateway_with_a_tools_file_that_is_not_yaml(
    gateway_env: dict[str, str], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("tools: [a: b\n  - ")
    result = run_quietly(["gateway"], {**gateway_env, "ASYA_CONFIG_PATH": str(broken)})
    assert_one_line(result, 2, "asya gateway:", str(broken), "not valid YAML")


def test_gateway_with_a_broker_that_refuses_the_login(gateway_env: dict[str, str]) -> None:
    result = run_quietly(["gateway"], {**gateway_env, "ASYA_TRANSPORT_URL": BAD_LOGIN})
    assert_one_line(result, 1, "asya gateway:", "refused the login")
    assert "wrong-password" not in result.stderr


def test_sidecar_with_a_broker_that_refuses_the_login() -> None:
    env = {"ASYA_TRANSPORT_URL": BAD_LOGIN, "ASYA_QUEUE_NAME": f"q-{uuid.uuid4().hex[:8]}"}
    result = run_quietly(["sidecar"], {**env, "ASYA_METRICS_ENABLED": "false"})
    assert_one_line(result, 1, "asya sidecar:", "refused the login")


def test_sidecar_with_its_metrics_port_in_use(taken_port: int) -> None:
    env = {
        "ASYA_QUEUE_NAME": f"q-{uuid.uuid4().hex[:8]}",
        "ASYA_METRICS_ADDR": f"127.0.0.1:{taken_port}",
    }
    result = run_quietly(["sidecar"], env)
    assert_one_line(result, 1, "asya sidecar:", str(taken_port), "ASYA_METRICS_ADDR")
