"""An invalid asya.yaml stops ``asya up`` at once (exit 2) with the documented errors."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.helpers import asya_command, child_env


def run_up(folder: Path, text: str) -> subprocess.CompletedProcess[str]:
    (folder / "asya.yaml").write_text(text)
    return subprocess.run(
        asya_command("up"),
        cwd=folder,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "gateway: {tools: routes.yaml}\nactors:\n  - {name: a, handler: h.f}\n",
            "asya.yaml:1: gateway.tools: file not found",
        ),
        (
            "actors:\n  - name: a\n    handler: h.f\n    replicas: 1\n"
            "    scaling: {min: 0, max: 2, queue_length: 1}\n",
            "asya.yaml:4: actors[0].replicas: set either replicas",
        ),
        (
            "actors:\n  - {name: a, handler: h.f}\n  - {name: a, handler: h.g}\n",
            "asya.yaml:3: actors[1].name: duplicate actor name 'a'",
        ),
    ],
    ids=["missing-tools-file", "replicas-and-scaling", "duplicate-names"],
)
def test_invalid_file_exits_2_naming_line_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    result = run_up(tmp_path, text)

    assert result.returncode == 2
    assert expected in result.stderr
    assert not (tmp_path / ".asya").exists()


def test_gateway_port_in_use_exits_1_before_starting_anything(tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text("tools: []\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_up(
            tmp_path,
            f"gateway: {{port: {port}, tools: routes.yaml}}\n"
            "actors:\n  - {name: a, handler: h.f}\n",
        )

    assert result.returncode == 1
    assert f"port {port} is already in use" in result.stdout
