"""Routing, fan-out, error-end, retries and a consumer killed mid-message, with SQS as the
broker (the same scenarios as sidecar_vs_runtime, fewer of them)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.integration.sidecar_vs_runtime.checks import assert_error_end, assert_routed_to_end
from tests.integration.sidecar_vs_runtime.harness import Processes

from .conftest import SqsMesh

pytestmark = pytest.mark.services

STARTUP = 60.0  # the first message waits for the actors to start


def test_a_two_step_route_passes_through_both_actors_to_happy_end(
    sqs_mesh: SqsMesh, tid: str
) -> None:
    echo = sqs_mesh.q("echo")
    sent = sqs_mesh.send([echo, echo], {"test_id": tid})
    [out] = sqs_mesh.happy_end.expect(tid, timeout=STARTUP)
    assert_routed_to_end(out, sent, {"test_id": tid})


def test_fanout_outputs_each_travel_the_rest_of_the_route(sqs_mesh: SqsMesh, tid: str) -> None:
    sqs_mesh.send([sqs_mesh.q("fanout"), sqs_mesh.q("echo")], {"test_id": tid, "count": 3})
    outs = sqs_mesh.happy_end.expect(tid, count=3, timeout=STARTUP)
    assert sorted(out["payload"]["index"] for out in outs) == [0, 1, 2]
    assert all(out["route"]["current"] == 2 for out in outs)


def test_a_handler_error_sends_the_message_to_error_end(sqs_mesh: SqsMesh, tid: str) -> None:
    step = sqs_mesh.q("error")
    sent = sqs_mesh.send([step], {"test_id": tid})
    [out] = sqs_mesh.error_end.expect(tid, timeout=STARTUP)
    assert_error_end(out, sent, code="processing_error", failed_step=step, error_type="ValueError")


def test_a_crash_is_retried_after_a_delay_and_exhausted_retries_go_to_error_end(
    sqs_mesh: SqsMesh, tid: str
) -> None:
    step = sqs_mesh.q("crash-once")
    once = sqs_mesh.send([step], {"test_id": f"{tid}-once", "fail_times": 1})
    always = sqs_mesh.send([step], {"test_id": f"{tid}-always", "fail_times": 99})

    [out] = sqs_mesh.happy_end.expect(tid, timeout=STARTUP)
    assert out["payload"] == {**once["payload"], "succeeded_on_attempt": 1}
    [failed] = sqs_mesh.error_end.expect(tid, timeout=STARTUP)
    assert_error_end(
        failed, None, code="runtime_crashed", failed_step=step, severity="recoverable", attempts=3
    )
    assert failed["payload"] == always["payload"]


def test_a_message_whose_actor_is_killed_mid_message_is_processed_by_the_next(
    sqs_mesh: SqsMesh, procs: Processes, tid: str, tmp_path: Path
) -> None:
    name = f"slow-{tid[2:10]}"
    queue = sqs_mesh.queues.q(name)
    sqs_mesh.queues.declare(queue)
    runtime = procs.runtime(name, "timeout", sqs_mesh.env())
    sidecar = procs.sidecar(name, queue, sqs_mesh.env())
    marker = tmp_path / "started"
    payload = {"test_id": tid, "sleep_seconds": 60, "started_marker": str(marker)}
    sqs_mesh.send([queue], payload)
    deadline = time.monotonic() + STARTUP
    while not marker.exists():
        assert time.monotonic() < deadline, f"the handler never started:\n{sidecar.tail()}"
        time.sleep(0.1)

    sidecar.kill9()  # no drain, no goodbye: its heartbeat stops with it
    os.killpg(runtime.pid, signal.SIGKILL)  # the runtime and its sleeping worker
    runtime.wait(10)
    procs.actor(f"echo-{tid[2:10]}", "echo", queue, sqs_mesh.env())

    # back in the queue once its visibility timeout ends, and the new actor takes it
    [out] = sqs_mesh.happy_end.expect(tid, timeout=STARTUP)
    assert out["payload"] == payload
    assert out["route"]["current"] == 1
