"""The processes of the gateway_vs_actors suite and the small clients the tests share.

Everything runs for real: ``asya gateway`` processes on free ports, one ``asya actor`` (runtime
+ sidecar) per handler and per crew member, the machine's RabbitMQ (an exchange and queue
prefix of this run's own) and PostgreSQL (a fresh database per run).
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.helpers import asya_command, child_env, stop_process, wait_until

HERE = Path(__file__).resolve().parent
TERMINAL = ("Succeeded", "Failed")
ACTOR_TOKEN = "actor-token-for-tests"
API_KEYS = ("key-one", "key-two")


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------

_handed_out: set[int] = set()


def listen_port() -> int:
    """A free port below the kernel's ephemeral range (32768+).

    Ports picked with bind(0) come from the range outgoing connections also use, and a child
    process binds seconds later on a loaded machine: a client socket can take the port first.
    """
    while True:
        port = random.randrange(20000, 32000)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


@dataclass
class Service:
    """One child process with its log file; ``restart`` starts it again with the same command."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=HERE
        )
        log.close()

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        code = stop_process(self.proc, timeout)
        return code

    def wait_ready(self, timeout: float = 60.0) -> None:
        raise NotImplementedError

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Gateway(Service):
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"{self.name} exited:\n{self.log_tail()}")
            try:
                return httpx.get(f"{self.url}/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=timeout, interval=0.2, what=f"{self.name} /ready")


@dataclass
class Actor(Service):
    queue: str = ""
    metrics_port: int = 0

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"actor {self.name} exited:\n{self.log_tail()}")
            try:
                url = f"http://127.0.0.1:{self.metrics_port}/health"
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=timeout, interval=0.2, what=f"actor {self.name} /health")


@dataclass
class Mesh:
    """What the tests see: gateway URLs, queue names and the processes behind them."""

    prefix: str
    exchange: str
    rabbitmq_url: str
    database_url: str
    tools_path: Path
    gateway: Gateway
    replica: Gateway
    guarded: Gateway
    guarded_database: str
    s3_endpoint: str
    s3_bucket: str
    actors: dict[str, Actor] = field(default_factory=dict)

    def queue(self, role: str) -> str:
        return f"{self.prefix}-{role}"

    @property
    def url(self) -> str:
        return self.gateway.url


def write_tools_file(path: Path, prefix: str) -> None:
    """The tools of the example in docs/reference/gateway-api.md#tools-file, with this run's queue
    names."""
    q = {role: f"{prefix}-{role}" for role in ROLES}
    tools = {
        "defaults": {"progress": True, "timeout": 30},
        "routes": {"double-then-add": [q["doubler"], q["incrementer"]]},
        "tools": [
            {
                "name": "test_echo",
                "description": "Echo the arguments back",
                "parameters": {"message": {"type": "string", "required": True}},
                "route": [q["echo"]],
            },
            {
                "name": "test_progress",
                "description": "Sleep 0.3 s per step, with heartbeats",
                "parameters": {"steps": {"type": "integer", "default": 5}},
                "route": [q["progress"]],
            },
            {
                "name": "test_pipeline",
                "description": "Double then add five",
                "parameters": {
                    "value": {"type": "integer", "description": "the input", "required": True},
                    "mode": {"type": "string", "options": ["fast", "slow"], "default": "fast"},
                },
                "route": [q["doubler"], q["incrementer"]],
            },
            {
                "name": "test_pipeline_wait",
                "description": "Double then add five, answering with the result",
                "parameters": {"value": {"type": "integer", "required": True}},
                "route": "double-then-add",
                "wait": True,
                "timeout": 30,
            },
            {
                "name": "test_echo_text_wait",
                "description": "Echo the message as a bare string, answering with it",
                "parameters": {
                    "message": {"type": "string", "required": True},
                    "bare": {"type": "boolean", "default": True},
                },
                "route": [q["echo"]],
                "wait": True,
            },
            {
                "name": "test_error_wait",
                "description": "Always fails, answering with the error",
                "parameters": {"reason": {"type": "string", "default": "requested"}},
                "route": [q["error"]],
                "wait": True,
            },
            {
                "name": "test_error",
                "description": "Always fails",
                "parameters": {"reason": {"type": "string", "default": "requested"}},
                "route": [q["error"]],
            },
            {
                "name": "test_timeout",
                "description": "Sleeps longer than its actor's 5 s timeout",
                "parameters": {"sleep_seconds": {"type": "number", "default": 60}},
                "route": [q["timeout"]],
                "timeout": 10,
            },
            {
                "name": "test_fanout",
                "description": "One branch per part, each upper-cased",
                "parameters": {
                    "parts": {"type": "array", "required": True},
                    "delay": {"type": "number", "default": 0},
                },
                "route": [q["split"], q["upper"]],
            },
            {
                "name": "test_fanout_nested",
                "description": "Parts of parts: a fan-out in each branch of a fan-out",
                "parameters": {"parts": {"type": "array", "required": True}},
                "route": [q["split"], q["split"], q["upper"]],
            },
            {
                "name": "test_unanswered",
                "description": "A queue nobody consumes: only the deadline can end the job",
                "parameters": {},
                "route": [q["unanswered"]],
                "timeout": 2,
            },
            {
                "name": "test_parked",
                "description": "A queue nobody consumes, with the default deadline",
                "parameters": {},
                "route": [q["unanswered"]],
            },
        ],
    }
    path.write_text(yaml.safe_dump(tools, sort_keys=False))


# role -> (handler, mode, extra env)
ACTOR_SPECS: dict[str, tuple[str, str, dict[str, str]]] = {
    "echo": ("handlers.echo", "payload", {}),
    "progress": ("handlers.progress", "message", {}),
    "doubler": ("handlers.doubler", "payload", {}),
    "incrementer": ("handlers.incrementer", "payload", {}),
    "error": ("handlers.error", "payload", {}),
    "timeout": ("handlers.timeout", "payload", {"ASYA_RUNTIME_TIMEOUT": "5s"}),
    "split": ("handlers.split", "payload", {}),
    "upper": ("handlers.upper", "payload", {}),
    "happy-end": (
        "asya.crew.happy_end.handle",
        "message",
        {"ASYA_IS_TERMINAL": "true", "ASYA_ENABLE_VALIDATION": "false"},
    ),
    "error-end": (
        "asya.crew.error_end.handle",
        "message",
        {"ASYA_IS_TERMINAL": "true", "ASYA_ENABLE_VALIDATION": "false"},
    ),
}
ROLES = (*ACTOR_SPECS, "unanswered")


def actor_service(
    role: str,
    prefix: str,
    common: Mapping[str, str],
    gateway_url: str,
    work: Path,
    more_env: Mapping[str, str],
) -> Actor:
    handler, mode, extra = ACTOR_SPECS[role]
    queue = f"{prefix}-{role}"
    metrics_port = listen_port()
    env = child_env(
        {
            **common,
            "PYTHONPATH": f"{HERE}:{child_env()['PYTHONPATH']}",
            "ASYA_GATEWAY_URL": gateway_url,
            "ASYA_GATEWAY_TOKEN": ACTOR_TOKEN,
            "ASYA_METRICS_ADDR": f"127.0.0.1:{metrics_port}",
            "ASYA_CREW_REPORT_ATTEMPTS": "6",
            "ASYA_CREW_REPORT_BACKOFF": "0.5s",
            "ASYA_RETRY_BACKOFF": "0.5s",
            **extra,
            **more_env,
        }
    )
    command = asya_command("actor", "--handler", handler, "--queue", queue, "--mode", mode)
    if "ASYA_RUNTIME_TIMEOUT" in extra:
        command += ["--timeout", extra["ASYA_RUNTIME_TIMEOUT"]]
    return Actor(
        name=role,
        command=command,
        env=env,
        log_path=work / f"actor-{role}.log",
        queue=queue,
        metrics_port=metrics_port,
    )


def gateway_service(
    name: str,
    database_url: str,
    common: Mapping[str, str],
    tools: Path,
    work: Path,
    port: int | None = None,
    **extra: str,
) -> Gateway:
    port = port or listen_port()
    env = child_env(
        {
            **common,
            "ASYA_GATEWAY_HOST": "127.0.0.1",
            "ASYA_GATEWAY_PORT": str(port),
            "ASYA_DATABASE_URL": database_url,
            "ASYA_CONFIG_PATH": str(tools),
            "ASYA_GATEWAY_ACTOR_TOKEN": ACTOR_TOKEN,
            **extra,
        }
    )
    return Gateway(
        name=name,
        command=asya_command("gateway"),
        env=env,
        log_path=work / f"gateway-{name}.log",
        port=port,
    )


# ---------------------------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------------------------


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )


def actor_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ACTOR_TOKEN}"}


def expected_call_text(job_id: str) -> str:
    return (
        f"Job created successfully with ID: {job_id}\n\n"
        "Use the following endpoints:\n"
        f"- Status: GET /jobs/{job_id}\n"
        f"- Real-time updates: GET /jobs/{job_id}/stream (SSE)"
    )


async def create_job(client: httpx.AsyncClient, name: str, arguments: dict[str, Any]) -> str:
    """``POST /tools/call``; asserts the exact CallToolResult and returns the job id."""
    response = await client.post("/tools/call", json={"name": name, "arguments": arguments})
    assert response.status_code == 200, response.text
    body = response.json()
    job_id = body["structuredContent"]["job_id"]
    assert body == {
        "content": [{"type": "text", "text": expected_call_text(job_id)}],
        "structuredContent": {"job_id": job_id},
        "isError": False,
    }
    return str(job_id)


async def wait_terminal(
    client: httpx.AsyncClient, job_id: str, within: float = 40.0
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        response = await client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in TERMINAL:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {within} s: {job}")
        await asyncio.sleep(0.1)


@dataclass
class SseEvent:
    event: str
    data: str
    id: str | None = None

    def json(self) -> Any:
        return json.loads(self.data)


async def iter_sse(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """Parse a text/event-stream body (comments skipped, multi-line data joined)."""
    event, event_id = "message", None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield SseEvent(event, "\n".join(data), event_id)
            event, data, event_id = "message", [], None
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
            elif name == "id":
                event_id = value
    if data:
        yield SseEvent(event, "\n".join(data), event_id)


async def read_stream(
    base_url: str, job_id: str, *, within: float = 40.0, headers: Mapping[str, str] | None = None
) -> list[SseEvent]:
    """Every event of ``GET /jobs/{id}/stream`` until the server closes it."""

    async def collect() -> list[SseEvent]:
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=None) as client,
            client.stream("GET", f"/jobs/{job_id}/stream", headers=dict(headers or {})) as resp,
        ):
            assert resp.status_code == 200, await resp.aread()
            assert resp.headers["content-type"].startswith("text/event-stream")
            return [event async for event in iter_sse(resp)]

    return await asyncio.wait_for(collect(), within)


def updates(events: list[SseEvent]) -> list[dict[str, Any]]:
    return [e.json() for e in events if e.event == "update"]


def collapse(values: list[Any]) -> list[Any]:
    """Consecutive duplicates removed: [a, a, b, a] -> [a, b, a]."""
    out: list[Any] = []
    for value in values:
        if not out or out[-1] != value:
            out.append(value)
    return out
