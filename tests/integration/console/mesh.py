"""A real gateway and real actors for the console's tests, on SQLite (jobs and queues).

``asya gateway`` plus one ``asya actor`` per handler and per crew member, every one a child
process of its own, in a temporary folder. ``stop_actor``/``start_actor`` take one actor away
and bring it back (its queue then fills up).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.helpers import asya_command, child_env, free_port, stop_process, wait_until

HERE = Path(__file__).resolve().parent
TERMINAL = ("Succeeded", "Failed")

ACTORS: dict[str, tuple[str, str]] = {  # queue -> (handler, mode)
    "console-doubler": ("handlers.doubler", "payload"),
    "console-incrementer": ("handlers.incrementer", "payload"),
    "console-failing": ("handlers.failing", "payload"),
    "console-echo": ("handlers.echo", "payload"),
    "console-split": ("handlers.split", "payload"),
    "happy-end": ("asya.crew.happy_end.handle", "message"),
    "error-end": ("asya.crew.error_end.handle", "message"),
}

TOOLS = [
    {
        "name": "pipeline",
        "description": "Double, then add five",
        "parameters": {
            "value": {"type": "integer", "required": True},
            "pause": {"type": "number", "default": 0},
        },
        "route": ["console-doubler", "console-incrementer"],
    },
    {
        "name": "always_fails",
        "description": "Fails with a KeyError",
        "parameters": {},
        "route": ["console-failing"],
    },
    {
        "name": "echo",
        "description": "Echo the arguments",
        "parameters": {"text": {"type": "string"}},
        "route": ["console-echo"],
    },
    {
        "name": "fan_out",
        "description": "One branch per part",
        "parameters": {"parts": {"type": "array", "required": True}},
        "route": ["console-split"],
    },
]


@dataclass
class ConsoleMesh:
    folder: Path
    port: int
    env: dict[str, str]
    gateway: subprocess.Popen[bytes] | None = None
    actors: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(
        self, name: str, command: list[str], extra: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        with (self.folder / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                command,
                cwd=self.folder,
                env={**self.env, **extra},
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def start_gateway(self) -> None:
        extra = {"ASYA_GATEWAY_PORT": str(self.port), "ASYA_GATEWAY_HOST": "127.0.0.1"}
        self.gateway = self._spawn("gateway", asya_command("gateway"), extra)

    def start_actor(self, queue: str) -> None:
        handler, mode = ACTORS[queue]
        command = asya_command("actor", "--handler", handler, "--queue", queue, "--mode", mode)
        extra = {"ASYA_METRICS_ADDR": f"127.0.0.1:{free_port()}"}
        if queue.endswith("-end"):
            command += ["--terminal", "--no-validation"]
        self.actors[queue] = self._spawn(queue, command, extra)

    def stop_actor(self, queue: str) -> None:
        stop_process(self.actors.pop(queue), timeout=20)

    def wait_ready(self, timeout: float = 90.0) -> None:
        def ready() -> bool:
            assert self.gateway is not None
            assert self.gateway.poll() is None, self.log("gateway")
            for queue, proc in self.actors.items():
                assert proc.poll() is None, self.log(queue)
            try:
                return httpx.get(f"{self.url}/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=timeout, interval=0.2, what="the console mesh")
        wait_until(self._queues_declared, timeout=timeout, interval=0.3, what="actor queues")

    def _queues_declared(self) -> bool:
        actors = httpx.get(f"{self.url}/actors", timeout=10).json()["actors"]
        return all(row["error"] is None for row in actors if row["role"] != "dead-letter")

    def log(self, name: str) -> str:
        path = self.folder / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def submit(self, tool: str, arguments: dict[str, Any]) -> str:
        response = httpx.post(
            f"{self.url}/tools/call", json={"name": tool, "arguments": arguments}, timeout=10
        )
        response.raise_for_status()
        return str(response.json()["structuredContent"]["job_id"])

    def wait_job(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job: dict[str, Any] = httpx.get(f"{self.url}/jobs/{job_id}", timeout=10).json()
            if job["status"] in TERMINAL:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not end within {timeout} s")

    def stop(self) -> None:
        for proc in self.actors.values():
            proc.terminate()
        for proc in [*self.actors.values(), *([self.gateway] if self.gateway else [])]:
            stop_process(proc, timeout=20)
        self.actors.clear()


def start_console_mesh(folder: Path) -> ConsoleMesh:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "handlers.py").write_text((HERE / "handlers.py").read_text())
    (folder / "tools.yaml").write_text(yaml.safe_dump({"tools": TOOLS}, sort_keys=False))
    env = child_env(
        {
            "PYTHONPATH": f"{folder}:{child_env()['PYTHONPATH']}",
            "ASYA_TRANSPORT_URL": f"sqlite:///{folder}/queues.db",
            "ASYA_DATABASE_URL": f"sqlite:///{folder}/jobs.db",
            "ASYA_CONFIG_PATH": str(folder / "tools.yaml"),
            "ASYA_RETRY_BACKOFF": "0.2s",
        }
    )
    env.pop("ASYA_GATEWAY_URL", None)
    port = free_port()
    mesh = ConsoleMesh(folder, port, {**env, "ASYA_GATEWAY_URL": f"http://127.0.0.1:{port}"})
    try:
        mesh.start_gateway()
        for queue in ACTORS:
            mesh.start_actor(queue)
        mesh.wait_ready()
    except BaseException:
        mesh.stop()
        raise
    return mesh
