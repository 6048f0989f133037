"""The supervisor: worker replacement, timeouts, backlog, signals and socket lifecycle."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from tests.helpers import wait_until
from tests.integration.runtime.rtclient import (
    NoResponse,
    RuntimeProcess,
    StartRuntime,
    message,
    wait_for_log,
)


def call_in_background(
    runtime: RuntimeProcess, payload: dict[str, object], folder: Path
) -> tuple[threading.Thread, list[object]]:
    """Start a ``Counter.count`` call on a thread and return once the handler is running it;
    the list receives the call's response or exception."""
    started = folder / f"started-{uuid.uuid4().hex}"
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(runtime.call(message({**payload, "started": str(started)}), timeout=30))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_until(started.exists, timeout=10, what="the handler call to start")
    return thread, outcome


def alive(pid: int) -> bool:
    """The process runs (an exited one its new parent has not reaped yet does not count)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_worker_killed_during_a_call_is_replaced_on_the_same_socket(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    runtime = start_runtime("rt_handlers.Counter.count")
    parent, worker = runtime.proc.pid, runtime.worker_pid()
    inode = os.stat(runtime.socket_path).st_ino
    thread, outcome = call_in_background(runtime, {"sleep": 5}, tmp_path)

    os.kill(worker, signal.SIGKILL)
    thread.join(10)

    assert isinstance(outcome[0], NoResponse), "the killed call's connection closes, no frame"
    (output,) = runtime.call(message({}))
    assert output["payload"]["calls"] == 1, "a fresh worker builds a fresh instance"
    assert output["payload"]["pid"] != worker
    assert runtime.proc.pid == parent
    assert runtime.proc.poll() is None
    assert os.stat(runtime.socket_path).st_ino == inode
    assert "was killed by SIGKILL" in runtime.logs()


def test_segfaulting_handler_is_answered_by_a_fresh_worker_next_time(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("rt_handlers.crash_in_c")
    worker = runtime.worker_pid()

    for _ in range(2):
        with pytest.raises(NoResponse):
            runtime.call(message({}))

    assert runtime.proc.poll() is None
    assert runtime.worker_pid() != worker
    assert "was killed by SIGSEGV (crashed in C code)" in runtime.logs()


def test_worker_whose_helper_process_outlives_it_is_still_replaced(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("rt_handlers.StartsHelperProcess.handle")
    helpers = []
    try:
        (first,) = runtime.call(message({}))
        helpers.append(first["payload"]["helper"])

        os.kill(first["payload"]["pid"], signal.SIGKILL)
        (second,) = runtime.call(message({}), timeout=10)
        helpers.append(second["payload"]["helper"])

        assert second["payload"]["pid"] != first["payload"]["pid"]
        assert psutil.pid_exists(first["payload"]["helper"]), "the helper outlived its worker"
    finally:
        for helper in helpers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(helper, signal.SIGKILL)


def test_replacement_serves_calls_made_while_it_loads_none_refused(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("rt_handlers.with_pid")
    worker = runtime.worker_pid()

    start = time.monotonic()
    os.kill(worker, signal.SIGKILL)
    with ThreadPoolExecutor(10) as pool:  # connect at once, while the replacement starts
        responses = list(pool.map(lambda i: runtime.call(message(i)), range(10)))
    served_after = time.monotonic() - start

    assert served_after < 5, f"the replacement served after {served_after:.1f} s (< 1 s idle)"

    assert [r[0]["payload"]["payload"] for r in responses] == list(range(10))
    assert {r[0]["payload"]["pid"] for r in responses} == {runtime.worker_pid()} - {worker}


def test_call_over_the_timeout_is_abandoned_and_the_next_meets_a_fresh_worker(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("rt_handlers.Counter.count", {"ASYA_RUNTIME_TIMEOUT": "1s"})
    assert runtime.call(message({}))[0]["payload"]["calls"] == 1
    assert runtime.call(message({"sleep": 0.5}))[0]["payload"]["calls"] == 2, "within the limit"
    first_worker = runtime.worker_pid()

    start = time.monotonic()
    with pytest.raises(NoResponse):
        runtime.call(message({"sleep": 30}), timeout=20)
    abandoned_after = time.monotonic() - start

    assert 1.9 <= abandoned_after < 6, f"abandoned after {abandoned_after:.1f} s (1 s + 1 s grace)"
    (output,) = runtime.call(message({}))
    assert output["payload"]["calls"] == 1, "the class instance was built again"
    assert output["payload"]["pid"] != first_worker
    assert "longer than ASYA_RUNTIME_TIMEOUT" in runtime.logs()


def test_twenty_clients_connecting_at_once_are_all_served(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("rt_handlers.echo")

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda i: runtime.call(message({"i": i})), range(20)))

    assert [r[0]["payload"]["i"] for r in responses] == list(range(20))


def test_sigterm_during_a_slow_call_delivers_the_answer_then_exits_0(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    runtime = start_runtime("rt_handlers.Counter.count")
    worker = runtime.worker_pid()
    thread, outcome = call_in_background(runtime, {"sleep": 1.5}, tmp_path)

    runtime.signal(signal.SIGTERM)
    wait_until(lambda: not os.path.exists(runtime.socket_path), timeout=1, what="socket removal")
    assert thread.is_alive(), "the socket path goes at once, before the call ends"
    thread.join(15)

    assert outcome[0][0]["payload"]["calls"] == 1  # type: ignore[index]
    assert runtime.wait_exit() == 0
    assert not psutil.pid_exists(worker), "no orphan worker"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_when_idle_exits_0_and_removes_the_socket(
    start_runtime: StartRuntime, signum: signal.Signals
) -> None:
    runtime = start_runtime("rt_handlers.echo")
    worker = runtime.worker_pid()

    runtime.signal(signum)

    assert runtime.wait_exit() == 0
    assert not os.path.exists(runtime.socket_path)
    assert os.listdir(runtime.folder) == ["runtime.log"]
    assert not psutil.pid_exists(worker)


def test_socket_appears_only_once_the_handler_has_loaded(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("rt_slow_import.handle", {"RT_IMPORT_DELAY": "1"}, wait=False)
    wait_until(lambda: len(runtime.workers()) == 1, what="the worker")
    time.sleep(0.3)

    assert not os.path.exists(runtime.socket_path), "no socket while the handler loads"
    runtime.wait_ready()
    assert runtime.call(message("loaded"))[0]["payload"] == "loaded"


def test_stop_signal_while_the_handler_loads_exits_0_and_leaves_no_socket(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("rt_slow_import.handle", {"RT_IMPORT_DELAY": "5"}, wait=False)
    wait_until(lambda: len(runtime.workers()) == 1, what="the worker")

    runtime.signal(signal.SIGTERM)

    assert runtime.wait_exit() == 0
    assert os.listdir(runtime.folder) == ["runtime.log"]


def test_stale_file_at_the_socket_path_is_replaced(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    stale = tmp_path / "app.sock"
    stale.write_text("left over by a crashed container")

    runtime = start_runtime("rt_handlers.echo", {"ASYA_SOCKET_PATH": str(stale)})

    assert stat.S_ISSOCK(os.stat(stale).st_mode)
    assert runtime.call(message(1))[0]["payload"] == 1


def test_worker_exits_when_the_supervisor_is_killed(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("rt_handlers.echo")
    worker = runtime.worker_pid()

    runtime.proc.kill()
    runtime.proc.wait()

    wait_until(lambda: not alive(worker), timeout=10, what="the worker to exit")


@pytest.mark.parametrize(("chmod", "expected"), [(None, 0o660), ("600", 0o600), ("0o666", 0o666)])
def test_socket_mode_follows_asya_socket_chmod(
    start_runtime: StartRuntime, chmod: str | None, expected: int
) -> None:
    env = {} if chmod is None else {"ASYA_SOCKET_CHMOD": chmod}

    runtime = start_runtime("rt_handlers.echo", env)

    assert stat.S_IMODE(os.stat(runtime.socket_path).st_mode) == expected


def test_empty_asya_socket_chmod_leaves_the_mode_as_bind_made_it(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    with socket.socket(socket.AF_UNIX) as probe:  # what bind gives under our umask
        probe.bind(str(tmp_path / "p.sock"))
        bind_mode = stat.S_IMODE(os.stat(tmp_path / "p.sock").st_mode)

    runtime = start_runtime("rt_handlers.echo", {"ASYA_SOCKET_CHMOD": ""})

    assert stat.S_IMODE(os.stat(runtime.socket_path).st_mode) == bind_mode


def test_replacement_that_cannot_load_is_retried_with_backoff(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    marker = tmp_path / "dependency-missing"
    runtime = start_runtime("rt_flaky.handle", {"RT_FLAKY_MARKER": str(marker)})
    marker.touch()  # from now on the handler module fails to import

    os.kill(runtime.worker_pid(), signal.SIGKILL)
    wait_for_log(runtime, "try 3 again in 1.0 s")
    marker.unlink()

    (output,) = runtime.call(message({}), timeout=20)
    assert output["payload"]["pid"] == runtime.worker_pid()
    logs = runtime.logs()
    assert "replacement worker could not load handler rt_flaky.handle" in logs
    assert "simulated: a dependency went missing" in logs
    assert "try 2 again in 0.5 s" in logs
    assert runtime.proc.poll() is None
