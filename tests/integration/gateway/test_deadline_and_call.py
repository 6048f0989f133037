"""Jobs whose actor is down: the default deadline ends them, ``asya call`` says why it waits,
and Ctrl-C leaves the job running (real ``asya gateway`` and ``asya call`` processes, RabbitMQ)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from asya.transports import open_transport
from tests.helpers import (
    asya_command,
    child_env,
    delete_rabbitmq_objects,
    free_port,
    stop_process,
    wait_until,
)
from tests.integration.gateway.conftest import eventually

TOOLS = """
tools:
  - name: shout
    parameters: {{text: {{type: string, required: true}}}}
    route: [{queue}]
  - name: endless
    route: [{queue}]
    timeout: 0
"""


@dataclass
class Gateway:
    url: str
    queue: str


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        stop_process(proc)


@pytest.fixture
async def gateway(
    tmp_path: Path, rabbitmq_url: str, unique_name: str, procs: list[subprocess.Popen[bytes]]
) -> AsyncIterator[Gateway]:
    """A gateway whose tools set no timeout, with ASYA_GATEWAY_DEFAULT_TIMEOUT=5s; the first
    queue exists but no actor consumes it."""
    queue = f"{unique_name}-shout"
    tools = tmp_path / "tools.yaml"
    tools.write_text(TOOLS.format(queue=queue))
    broker = open_transport(rabbitmq_url, exchange=unique_name)
    await broker.connect()
    await broker.declare_queue(queue)
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - starts a server; Popen does not wait
        asya_command("gateway"),
        env=child_env(
            {
                "ASYA_GATEWAY_HOST": "127.0.0.1",
                "ASYA_GATEWAY_PORT": str(port),
                "ASYA_CONFIG_PATH": str(tools),
                "ASYA_DATABASE_URL": f"sqlite:///{tmp_path}/jobs.db",
                "ASYA_RABBITMQ_URL": rabbitmq_url,
                "ASYA_RABBITMQ_EXCHANGE": unique_name,
                "ASYA_GATEWAY_DEFAULT_TIMEOUT": "5s",
            }
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    procs.append(proc)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, "the gateway exited"
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    await asyncio.to_thread(wait_until, healthy, 30, 0.1, "the gateway's /health")
    try:
        yield Gateway(url, queue)
    finally:
        await broker.close()
        await asyncio.to_thread(delete_rabbitmq_objects, rabbitmq_url, unique_name, [queue])


def _call(gateway: Gateway, *args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        asya_command("call", "--gateway", gateway.url, *args),
        env=child_env(),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )


def _ctrl_c_as_in_a_terminal() -> None:
    # A shell starts background jobs with SIGINT ignored, and children inherit that: a suite run
    # with `&` would give `asya call` no Ctrl-C at all. A user at a terminal has it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


async def test_a_job_whose_actor_is_down_is_named_then_ends_at_the_default_deadline(
    gateway: Gateway, tmp_path: Path
) -> None:
    started = time.monotonic()
    call = _call(gateway, "shout", "text=hi", cwd=tmp_path)
    out, err = await asyncio.to_thread(call.communicate, timeout=30)
    took = time.monotonic() - started

    assert call.returncode == 1, err
    assert out == ""
    assert f"no actor is consuming queue '{gateway.queue}' — is the actor running?" in err
    assert "job timed out after 5 s" in err
    assert 5 <= took < 20
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        (job,) = (await client.get("/jobs", params={"tool": "shout"})).json()["jobs"]
        assert job["status"] == "Failed"
        assert job["timeout_seconds"] == 5
        assert job["error_code"] == "deadline_exceeded"
        diagnosis = (await client.get(f"/jobs/{job['id']}/diagnosis")).json()
        assert diagnosis["consumers"] is None  # terminal: not diagnosed


async def test_ctrl_c_on_asya_call_leaves_the_job_running_and_says_how_to_follow_it(
    gateway: Gateway, tmp_path: Path
) -> None:
    call = _call(gateway, "endless", cwd=tmp_path)
    async with httpx.AsyncClient(base_url=gateway.url) as client:

        async def created() -> str | None:
            jobs = (await client.get("/jobs", params={"tool": "endless"})).json()["jobs"]
            return jobs[0]["id"] if jobs else None

        job_id = await eventually(created, limit=15)
        diagnosis = (await client.get(f"/jobs/{job_id}/diagnosis")).json()
        assert diagnosis["queue"] == gateway.queue
        assert diagnosis["consumers"] == 0
        assert diagnosis["problem"] == f"no actor is consuming queue '{gateway.queue}'"
        await asyncio.sleep(0.5)  # the client is following the job's stream by now
        call.send_signal(signal.SIGINT)
        _, err = await asyncio.to_thread(call.communicate, timeout=15)

        assert call.returncode == 130, err
        assert (
            f"job {job_id} goes on — `asya jobs cancel {job_id}` to stop it, "
            f"`asya jobs watch {job_id}` to follow it"
        ) in err
        assert "Traceback" not in err
        job = (await client.get(f"/jobs/{job_id}")).json()
        assert job["status"] == "Running"
        assert job["deadline"] is None  # timeout: 0 means no deadline
