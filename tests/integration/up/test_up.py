"""``asya up`` as a user runs it: a subprocess in a folder, driven by ``asya call`` and HTTP."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import asya_command, child_env, free_port, wait_until
from tests.integration.up.conftest import UpMesh


def test_pipeline_call_prints_25_and_exits_0(mesh: UpMesh) -> None:
    result = mesh.call("test_pipeline", "value=10")

    assert result.returncode == 0, result.stderr + mesh.log()[-3000:]
    assert json.loads(result.stdout) == {"value": 25}
    assert "Succeeded" in result.stderr
    assert "test-incrementer-queue (completed)" in result.stderr


def test_failing_tool_exits_1_with_the_error(mesh: UpMesh) -> None:
    result = mesh.call("test_error", "value=1")

    assert result.returncode == 1
    assert "Failed" in result.stderr
    assert "cannot handle" in result.stderr
    assert result.stdout == ""


def test_missing_argument_exits_2_listing_the_parameters(mesh: UpMesh) -> None:
    result = mesh.call("test_pipeline")

    assert result.returncode == 2
    assert "missing required argument 'value'" in result.stderr
    assert "value: integer (required)" in result.stderr


def test_handler_that_cannot_load_is_reported_once_and_the_rest_runs(mesh: UpMesh) -> None:
    broken = mesh.actor("test-broken-queue")

    assert broken["state"] == "failed"
    assert broken["replicas"] == 0
    assert mesh.log().count("handler 'handlers.does_not_exist' could not be loaded") == 1
    assert mesh.actor("test-doubler-queue")["state"] == "running"


def test_a_mesh_with_a_broken_actor_says_so_and_suggests_a_working_tool(mesh: UpMesh) -> None:
    total = len(mesh.status()["actors"])  # type: ignore[index]
    log = mesh.log()

    assert f"mesh started with {total - 1} of {total} actors" in log
    assert "mesh ready" not in log
    assert "not running test-broken-queue:" in log
    assert re.search(r"try\s+asya call --gateway \S+ test_pipeline key=value", log), log[-2000:]


def test_calling_the_broken_actor_says_it_failed_to_start_until_the_deadline(
    mesh: UpMesh,
) -> None:
    result = subprocess.run(
        asya_command("call", "test_broken", "--gateway", mesh.url),
        env=child_env(),
        cwd=mesh.folder,  # where the mesh's status file tells the client about its actors
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert "actor 'test-broken-queue' failed to start under asya up:" in result.stderr
    assert "does_not_exist" in result.stderr
    assert "job timed out after 6 s" in result.stderr


@pytest.mark.serial  # the autoscaler's timing: a busy CPU changes what it sees
def test_six_slow_jobs_scale_out_and_the_actor_scales_back_to_zero(mesh: UpMesh) -> None:
    assert mesh.actor("test-slow-queue")["replicas"] == 0
    started = time.monotonic()
    single = mesh.wait_job(mesh.submit("test_slow", {"seconds": 2}))
    one_job = time.monotonic() - started
    assert single["status"] == "Succeeded"

    peak = [0]
    done = threading.Event()

    def watch_replicas() -> None:
        while not done.is_set():
            status = mesh.status()
            if status:
                peak[0] = max(peak[0], status["actors"]["test-slow-queue"]["replicas"])
            time.sleep(0.1)

    watcher = threading.Thread(target=watch_replicas, daemon=True)
    watcher.start()
    started = time.monotonic()
    job_ids = [mesh.submit("test_slow", {"seconds": 2}) for _ in range(6)]
    jobs = [mesh.wait_job(job_id, timeout=90) for job_id in job_ids]
    six_jobs = time.monotonic() - started
    done.set()
    watcher.join()

    assert [job["status"] for job in jobs] == ["Succeeded"] * 6
    workers = {job["result"]["pid"] for job in jobs}
    assert len(workers) >= 2, f"all six jobs ran in one process: {workers}"
    assert peak[0] == 3
    assert six_jobs < 3.5 * one_job, f"six jobs {six_jobs:.1f} s, one job {one_job:.1f} s"
    wait_until(
        lambda: (
            mesh.actor("test-slow-queue")["replicas"] == 0
            and mesh.actor("test-slow-queue")["draining"] == 0
        ),
        timeout=30,
        what="test-slow-queue to scale back to zero",
    )
    assert "test-slow-queue: scaling in" in mesh.log()


@pytest.mark.serial  # the autoscaler's timing: a busy CPU changes what it sees
def test_replicas_removed_while_busy_finish_their_message_first(mesh: UpMesh) -> None:
    # queue_length 2 and no cooldown: once the queue is empty, three busy replicas are one
    # too many (ceil(3 / 2) = 2), so one is drained while its message is still running.
    job_ids = [mesh.submit("test_drain", {"seconds": 1.5}) for _ in range(6)]
    jobs = [mesh.wait_job(job_id, timeout=90) for job_id in job_ids]
    log = mesh.log()

    assert [job["status"] for job in jobs] == ["Succeeded"] * 6, log[-3000:]
    assert "test-drain-queue: scaling in 3 → 2" in log
    assert re.search(r"test-drain-queue#\d: draining \(1 in flight\), then stopping", log)


def test_killed_sidecar_is_restarted_and_its_messages_still_arrive(mesh: UpMesh) -> None:
    (process,) = mesh.actor("test-doubler-queue")["processes"]
    old_pid = process["sidecar_pid"]

    os.kill(old_pid, signal.SIGKILL)
    job_ids = [mesh.submit("test_pipeline", {"value": n}) for n in range(3)]

    wait_until(
        lambda: mesh.actor("test-doubler-queue")["processes"][0]["sidecar_pid"] != old_pid,
        timeout=30,
        what="a new doubler sidecar",
    )
    jobs = [mesh.wait_job(job_id) for job_id in job_ids]
    assert [job["result"] for job in jobs] == [{"value": 5}, {"value": 7}, {"value": 9}]
    assert "test-doubler-queue#1 sidecar exited with code -9; restarting" in mesh.log()


def test_a_second_mesh_on_the_same_folder_is_refused(mesh: UpMesh) -> None:
    result = subprocess.run(
        asya_command("up", "--port", str(free_port())),
        cwd=mesh.folder,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert f"already running (asya up, pid {mesh.proc.pid})" in result.stdout
    assert mesh.status() is not None  # the running mesh's status file is untouched


def test_sigterm_stops_everything_gracefully_and_leaves_no_process(mesh: UpMesh) -> None:
    status = mesh.status()
    assert status is not None
    children = [status["gateway"]["pid"]]
    for actor in (*status["actors"].values(), *status["crew"].values()):
        for process in actor["processes"]:
            children += [process["runtime_pid"], process["sidecar_pid"]]
    found = {process.pid for process in mesh.processes(status["mesh_id"])}
    assert set(children) <= found  # runtime workers are found too, by the same marker

    mesh.proc.send_signal(signal.SIGTERM)
    code = mesh.proc.wait(timeout=60)

    assert code == 0, mesh.log()[-3000:]
    assert mesh.processes(status["mesh_id"]) == []
    assert not any(_alive(pid) for pid in [status["pid"], *children])
    assert not Path(status["socket_dir"]).exists()
    assert mesh.status() is None
    assert mesh.log().rstrip().endswith("stopped")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
