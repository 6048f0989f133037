"""``asya actor`` as a user runs it: real runtime and sidecar processes on a SQLite queue file."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from asya.transports import open_transport
from tests.helpers import asya_command, child_env, stop_process, wait_until

pytestmark = pytest.mark.timeout(90)

HANDLERS = """
def double(payload):
    return {"value": payload["value"] * 2}
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "actor_handlers.py").write_text(HANDLERS)
    return tmp_path


@pytest.fixture
def queue_url(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'queues.db'}"


def declare(url: str, *queues: str) -> None:
    async def run() -> None:
        async with open_transport(url) as transport:
            for queue in queues:
                await transport.declare_queue(queue)

    asyncio.run(run())


def publish(url: str, queue: str, message: dict[str, Any]) -> None:
    async def run() -> None:
        async with open_transport(url) as transport:
            await transport.publish(queue, orjson.dumps(message))

    asyncio.run(run())


def take(url: str, queue: str, timeout: float = 20.0) -> dict[str, Any]:
    async def run() -> bytes:
        async with open_transport(url) as transport:
            subscription = await transport.consume(queue)
            async with asyncio.timeout(timeout):
                async for delivery in subscription:
                    await delivery.ack()
                    return delivery.body
        raise AssertionError("no message")

    return orjson.loads(asyncio.run(run()))  # type: ignore[no-any-return]


@pytest.fixture
def start_actor(workdir: Path, queue_url: str) -> Iterator[Any]:
    started: list[subprocess.Popen[bytes]] = []

    def start(*extra: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            asya_command(
                "actor",
                "--handler",
                "actor_handlers.double",
                "--queue",
                "doubler",
                "--transport-url",
                queue_url,
                "--timeout",
                "5s",
                *extra,
            ),
            cwd=workdir,
            env=child_env({"ASYA_METRICS_ENABLED": "false", **(env or {})}),
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        try:
            descendants = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            descendants = []
        stop_process(proc, timeout=15)
        for child in descendants:
            if child.is_running():
                child.kill()


def children_of(proc: subprocess.Popen[bytes]) -> dict[str, psutil.Process]:
    """The actor's two direct children by role, once both are running."""
    found: dict[str, psutil.Process] = {}

    def both() -> bool:
        for child in psutil.Process(proc.pid).children():
            cmdline = " ".join(child.cmdline())
            if "asya.runtime" in cmdline:
                found["runtime"] = child
            elif "asya.sidecar" in cmdline:
                found["sidecar"] = child
        return len(found) == 2

    wait_until(both, timeout=15, what="runtime and sidecar children")
    return found


def test_a_message_flows_through_and_sigterm_exits_zero_leaving_no_child(
    start_actor: Any, queue_url: str
) -> None:
    declare(queue_url, "doubler", "happy-end", "error-end")
    proc = start_actor()
    children = children_of(proc)
    descendants = psutil.Process(proc.pid).children(recursive=True)
    publish(
        queue_url,
        "doubler",
        {"job_id": "a1", "route": {"steps": ["doubler"], "current": 0}, "payload": {"value": 21}},
    )
    out = take(queue_url, "happy-end")
    assert out["payload"] == {"value": 42}
    assert out["route"]["current"] == 1
    assert out["job_id"] == "a1"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert set(children) == {"runtime", "sidecar"}
    _, alive = psutil.wait_procs(descendants, timeout=5)
    assert alive == []


def test_killing_the_runtime_stops_the_sidecar_and_exits_non_zero(
    start_actor: Any, queue_url: str
) -> None:
    proc = start_actor()
    children = children_of(proc)
    children["runtime"].kill()
    assert proc.wait(40) != 0
    assert not children["sidecar"].is_running() or children["sidecar"].status() == "zombie"


def test_a_sidecar_configuration_error_stops_the_actor_with_its_exit_code(
    start_actor: Any,
) -> None:
    proc = start_actor(env={"ASYA_RETRY_BACKOFF": "soon"})
    assert proc.wait(40) == 2


def test_a_malformed_flag_is_refused_before_starting_anything(workdir: Path) -> None:
    result = subprocess.run(
        asya_command("actor", "--handler", "h.f", "--queue", "q", "--timeout", "fast"),
        cwd=workdir,
        env=child_env(),
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert b"--timeout" in result.stderr
