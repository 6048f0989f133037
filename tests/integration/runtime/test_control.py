"""The control socket: interrupting the handler call of one job."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import uuid
from pathlib import Path

from asya.runtime import control_path, pack_frame, read_frame
from tests.helpers import wait_until
from tests.integration.runtime.rtclient import NoResponse, RuntimeProcess, StartRuntime


def job_message(job_id: str, payload: dict[str, object]) -> dict[str, object]:
    return {
        "route": {"steps": ["a", "b"], "current": 0, "metadata": {"job_id": job_id}},
        "payload": payload,
    }


def interrupt(runtime: RuntimeProcess, job_id: str) -> object:
    path = control_path(runtime.socket_path)
    assert path is not None
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(pack_frame(json.dumps({"interrupt": job_id}).encode()))
        body = read_frame(sock, 65536, 65536, 5)
    assert body is not None
    return json.loads(body)


def sleeping_call(runtime: RuntimeProcess, job_id: str, folder: Path) -> list[object]:
    """Start a 30 s handler call of ``job_id`` on a thread; return once it runs."""
    started = folder / f"started-{uuid.uuid4().hex}"
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(
                runtime.call(job_message(job_id, {"sleep": 30, "started": str(started)}), 40)
            )
        except Exception as exc:
            outcome.append(exc)

    threading.Thread(target=run, daemon=True).start()
    wait_until(started.exists, timeout=10, what="the handler call to start")
    return outcome


def test_interrupt_stops_the_call_of_that_job_and_a_fresh_worker_serves_next(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    runtime = start_runtime("rt_handlers.Counter.count")
    worker = runtime.worker_pid()
    outcome = sleeping_call(runtime, "job-1", tmp_path)

    began = time.monotonic()
    assert interrupt(runtime, "job-1") == {"interrupted": True}
    wait_until(lambda: bool(outcome), timeout=5, what="the interrupted call to end")

    assert time.monotonic() - began < 1.0
    assert isinstance(outcome[0], NoResponse)
    (output,) = runtime.call(job_message("job-2", {}))
    assert output["payload"]["calls"] == 1
    assert output["payload"]["pid"] != worker
    assert "interrupting the handler call of job job-1" in runtime.logs()


def test_interrupt_of_another_job_or_an_idle_worker_changes_nothing(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    runtime = start_runtime("rt_handlers.Counter.count")
    worker = runtime.worker_pid()
    assert interrupt(runtime, "job-1") == {"interrupted": False}

    outcome = sleeping_call(runtime, "job-1", tmp_path)
    assert interrupt(runtime, "job-2") == {"interrupted": False}
    assert not outcome
    assert runtime.worker_pid() == worker
    assert interrupt(runtime, "job-1") == {"interrupted": True}


def test_control_socket_is_removed_when_the_runtime_stops(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("rt_handlers.Counter.count")
    path = control_path(runtime.socket_path)
    assert path is not None
    assert Path(path).exists()
    runtime.signal(signal.SIGTERM)
    assert runtime.wait_exit() == 0
    assert not Path(path).exists()
