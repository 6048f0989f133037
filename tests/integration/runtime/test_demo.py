"""The runtime demo in examples/ runs as its README says."""

from __future__ import annotations

import subprocess

from tests.helpers import REPO_ROOT, child_env


def test_runtime_demo_serves_one_request_and_stops_cleanly() -> None:
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "examples" / "runtime-demo" / "demo.sh")],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert '"words": 12' in result.stdout
    assert "the runtime exited 0 and removed its socket: yes" in result.stdout
