"""A running ``asya up`` for the tests: a temporary folder, the process, its log and status."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml
from mcp import Client
from mcp.types import CallToolResult

from tests.helpers import asya_command, child_env, free_port, stop_process, wait_until

HERE = Path(__file__).resolve().parent
TERMINAL = ("Succeeded", "Failed")


@dataclass
class UpMesh:
    """One ``asya up`` process started in ``folder`` with its gateway on ``port``."""

    folder: Path
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def status(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.folder / ".asya" / "up.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def actor(self, name: str) -> dict[str, Any]:
        status = self.status()
        assert status is not None, "the status file is missing"
        return status["actors"][name]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def call(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            asya_command("call", *args, "--gateway", self.url),
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def submit(self, tool: str, arguments: dict[str, Any]) -> str:
        response = httpx.post(
            f"{self.url}/tools/call", json={"name": tool, "arguments": arguments}, timeout=10
        )
        response.raise_for_status()
        return str(response.json()["structuredContent"]["job_id"])

    def wait_job(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = httpx.get(f"{self.url}/jobs/{job_id}", timeout=10).json()
            if job["status"] in TERMINAL:
                return dict(job)
            time.sleep(0.1)
        raise AssertionError(
            f"job {job_id} did not finish within {timeout} s:\n{self.log()[-3000:]}"
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"asya up exited with {self.proc.returncode}:\n{self.log()}")
            status = self.status()
            return bool(status and status.get("ready"))

        wait_until(ready, timeout=timeout, interval=0.2, what="asya up to be ready")

    def processes(self, mesh_id: str) -> list[psutil.Process]:
        """Every live process started by this mesh (they carry ASYA_UP_MESH in their env)."""
        found = []
        for process in psutil.process_iter():
            try:
                if process.environ().get("ASYA_UP_MESH") == mesh_id:
                    found.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def kill_leftovers(self, mesh_id: str) -> None:
        for process in self.processes(mesh_id):
            process.kill()


def write_mesh(folder: Path, mesh: dict[str, Any], tools: list[dict[str, Any]]) -> None:
    """A mesh folder: the suite's handlers, asya.yaml and the gateway's routes.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "handlers.py", folder / "handlers.py")
    (folder / "routes.yaml").write_text(yaml.safe_dump({"tools": tools}, sort_keys=False))
    mesh = {"gateway": {"tools": "routes.yaml"}, **mesh}
    (folder / "asya.yaml").write_text(yaml.safe_dump(mesh, sort_keys=False))


def start_mesh(folder: Path, *extra: str) -> UpMesh:
    port = free_port()
    log_path = folder / "up.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            asya_command("up", "--port", str(port), *extra),
            cwd=folder,
            env=child_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    mesh = UpMesh(folder, port, proc, log_path)
    try:
        mesh.wait_ready()
    except BaseException:
        stop_mesh(mesh)
        raise
    return mesh


def stop_mesh(mesh: UpMesh) -> int:
    """SIGTERM ``asya up`` and make sure nothing it started survives, even on failure."""
    status = mesh.status()
    if mesh.proc.poll() is None:
        mesh.proc.send_signal(signal.SIGTERM)
    code = stop_process(mesh.proc, timeout=45)
    if status is not None:
        mesh.kill_leftovers(status["mesh_id"])
    return code


#: A tool argument over the 256 KiB offload threshold (and SQS's limit).
BIG_TEXT = "t" * (1024 * 1024)


def digest_tool(queue: str) -> dict[str, Any]:
    """A ``wait: true`` tool whose one actor (``handlers.digest_text``) says what it got."""
    text = {"text": {"type": "string", "required": True}}
    return {"name": "test_digest", "parameters": text, "route": [queue], "wait": True}


def digest_of(text: str) -> dict[str, Any]:
    data = text.encode()
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def call_over_mcp(mesh: UpMesh, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    async def call() -> CallToolResult:
        async with Client(f"{mesh.url}/mcp") as session:
            return await session.call_tool(tool, arguments)

    return asyncio.run(call())


def last_job_of(mesh: UpMesh, tool: str) -> str:
    listed = httpx.get(f"{mesh.url}/jobs", params={"tool": tool, "limit": 1}, timeout=10)
    return str(listed.json()["jobs"][0]["id"])


PIPELINE_ACTORS = [
    {"name": "test-doubler-queue", "handler": "handlers.pipeline_doubler", "timeout": "10s"},
    {
        "name": "test-incrementer-queue",
        "handler": "handlers.pipeline_incrementer",
        "timeout": "10s",
    },
]
PIPELINE_TOOL = {
    "name": "test_pipeline",
    "description": "Double then add five",
    "parameters": {"value": {"type": "integer", "required": True}},
    "route": ["test-doubler-queue", "test-incrementer-queue"],
    "timeout": 60,
}


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpMesh]:
    """The suite's SQLite mesh: the pipeline, a failing actor, a scaled slow actor, a broken one."""
    folder = tmp_path_factory.mktemp("mesh")
    actors = [
        *PIPELINE_ACTORS,
        {"name": "test-failing-queue", "handler": "handlers.always_fails", "timeout": "10s"},
        {
            "name": "test-slow-queue",
            "handler": "handlers.slow",
            "timeout": "30s",
            "scaling": {
                "min": 0,
                "max": 3,
                "queue_length": 1,
                "polling_interval": "250ms",
                "cooldown": "2s",
            },
        },
        {
            "name": "test-drain-queue",
            "handler": "handlers.slow",
            "timeout": "30s",
            "scaling": {
                "min": 0,
                "max": 3,
                "queue_length": 2,
                "polling_interval": "250ms",
                "cooldown": "0s",
            },
        },
        {"name": "test-broken-queue", "handler": "handlers.does_not_exist"},
    ]
    tools = [
        # first in the file, so the "try" hint must skip it for a tool that works
        {"name": "test_broken", "route": ["test-broken-queue"], "timeout": 6},
        PIPELINE_TOOL,
        {
            "name": "test_error",
            "parameters": {"value": {"type": "integer", "required": True}},
            "route": ["test-failing-queue"],
            "timeout": 60,
        },
        {
            "name": "test_slow",
            "parameters": {"seconds": {"type": "number", "required": True}},
            "route": ["test-slow-queue"],
            "timeout": 120,
        },
        {
            "name": "test_drain",
            "parameters": {"seconds": {"type": "number", "required": True}},
            "route": ["test-drain-queue"],
            "timeout": 120,
        },
    ]
    write_mesh(folder, {"actors": actors}, tools)
    running = start_mesh(folder)
    try:
        yield running
    finally:
        stop_mesh(running)
