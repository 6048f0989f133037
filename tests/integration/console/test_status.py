"""``asya status``, ``GET /actors`` and ``GET /jobs/summary`` against a real gateway process
(SQLite jobs and queues; a status file as ``asya up`` writes it for the replicas)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from asya.transports import open_transport
from tests.helpers import asya_command, child_env, free_port, stop_process, wait_until

QUEUES = ("status-first", "status-second")
DEAD_LETTER = "asya-dead-letter"


@dataclass
class Gateway:
    url: str
    folder: Path
    transport_url: str

    def put(self, queue: str, count: int) -> None:
        async def publish() -> None:
            async with open_transport(self.transport_url) as transport:
                for _ in range(count):
                    await transport.publish(queue, b'{"id": "x", "route": {}, "payload": {}}')

        asyncio.run(publish())

    def status(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            asya_command("status", "--gateway", self.url, *args),
            env=child_env({"COLUMNS": "160"}),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


async def _declare(url: str, queues: list[str]) -> None:
    async with open_transport(url) as transport:
        for queue in queues:
            await transport.declare_queue(queue)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("status")
    tools = {"tools": [{"name": "status_tool", "route": list(QUEUES)}]}
    (folder / "tools.yaml").write_text(yaml.safe_dump(tools))
    transport_url = f"sqlite:///{folder}/queues.db"
    asyncio.run(_declare(transport_url, [*QUEUES, "happy-end", "error-end", DEAD_LETTER]))
    mesh_status = {
        "ready": True,
        "actors": {"status-first": {"replicas": 2, "desired": 3, "state": "running"}},
        "crew": {"happy-end": {"replicas": 1, "state": "running"}},
    }
    (folder / "up.json").write_text(json.dumps(mesh_status))
    port = free_port()
    env = child_env(
        {
            "ASYA_GATEWAY_PORT": str(port),
            "ASYA_GATEWAY_HOST": "127.0.0.1",
            "ASYA_CONFIG_PATH": str(folder / "tools.yaml"),
            "ASYA_DATABASE_URL": f"sqlite:///{folder}/jobs.db",
            "ASYA_TRANSPORT_URL": transport_url,
            "ASYA_UP_STATUS_FILE": str(folder / "up.json"),
        }
    )
    with (folder / "gateway.log").open("wb") as log:
        proc = subprocess.Popen(asya_command("gateway"), env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (folder / "gateway.log").read_text()
        try:
            return httpx.get(f"{url}/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, timeout=60, interval=0.2, what="the gateway")
        yield Gateway(url, folder, transport_url)
    finally:
        stop_process(proc, timeout=20)


def _row(view: dict[str, Any], queue: str) -> dict[str, Any]:
    return next(row for row in view["actors"] if row["queue"] == queue)


@pytest.fixture(scope="module")
def populated(gateway: Gateway) -> Gateway:
    """The gateway after two jobs (waiting in the first queue: nobody consumes) and one dead
    letter: whichever test asks first makes them, so the tests hold in any order."""
    for _ in range(2):
        response = httpx.post(f"{gateway.url}/tools/call", json={"name": "status_tool"})
        assert response.status_code == 200, response.text
    gateway.put(DEAD_LETTER, 1)
    return gateway


def test_status_json_shows_queues_replicas_jobs_and_dead_letters(populated: Gateway) -> None:
    done = populated.status("--json")

    assert done.returncode == 0, done.stderr
    view = json.loads(done.stdout)
    assert [row["queue"] for row in view["actors"]] == [
        *QUEUES,
        "happy-end",
        "error-end",
        DEAD_LETTER,
    ]
    first = _row(view, "status-first")
    assert first["depth"] == 2  # the two jobs wait there: nobody consumes
    assert first["tools"] == ["status_tool"]
    assert (first["replicas"], first["desired"], first["state"]) == (2, 3, "running")
    assert _row(view, "happy-end")["replicas"] == 1
    assert _row(view, "status-second")["replicas"] is None  # the mesh does not run it
    assert view["mesh"] is True
    assert view["jobs"]["counts"]["Running"] == 2  # sent to their first queue
    assert view["jobs"]["total"] == 2
    assert view["dead_letters"] == 1


def test_status_table_names_every_queue(populated: Gateway) -> None:
    done = populated.status()

    assert done.returncode == 0, done.stderr
    for name in (*QUEUES, "happy-end", "error-end", DEAD_LETTER):
        assert name in done.stdout
    assert "jobs in the last 1h:" in done.stdout
    assert "dead letters: 1" in done.stdout


def test_status_watch_refreshes(gateway: Gateway) -> None:
    proc = subprocess.Popen(
        asya_command("status", "--gateway", gateway.url, "--watch", "--json", "--interval", "0.3"),
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        gateway.put("status-second", 3)
        wait_until(
            lambda: _row(json.loads(proc.stdout.readline()), "status-second")["depth"] == 3,  # type: ignore[union-attr]
            timeout=20,
            what="a refresh with the new depth",
        )
        assert _row(first, "status-second")["depth"] == 0
    finally:
        proc.terminate()
        proc.wait(10)


def test_status_exits_3_when_the_gateway_is_unreachable() -> None:
    done = subprocess.run(
        asya_command("status", "--gateway", f"http://127.0.0.1:{free_port()}"),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 3
    assert "cannot reach the gateway" in done.stderr


def test_jobs_summary_window(gateway: Gateway) -> None:
    short = httpx.get(f"{gateway.url}/jobs/summary", params={"since": "90s"}).json()
    assert short["window_seconds"] == 90
    assert set(short["counts"]) == {
        "Pending",
        "Running",
        "Succeeded",
        "Failed",
        "Cancelled",
        "Unknown",
    }
    bad = httpx.get(f"{gateway.url}/jobs/summary", params={"since": "yesterday"})
    assert bad.status_code == 400
    assert "since must be a duration" in bad.json()["error"]


def test_console_config_and_pages_are_served(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.url}/ui/config").json()["cancel"] is True
    root = httpx.get(f"{gateway.url}/", follow_redirects=False)
    assert (root.status_code, root.headers["location"]) == (302, "/ui")
    page = httpx.get(f"{gateway.url}/ui/jobs/%3Cscript%3E")
    assert "<script>" not in page.text.split("<body", 1)[1].split("<script src", 1)[0]
    assert httpx.get(f"{gateway.url}/ui/static/console.js").status_code == 200
