"""Handler failures, timeouts and deadlines: the message lands in error-end, complete."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.sidecar_vs_runtime import handlers
from tests.integration.sidecar_vs_runtime.checks import assert_error_end, assert_routed_to_end
from tests.integration.sidecar_vs_runtime.conftest import TIMEOUT_ACTOR_TIMEOUT
from tests.integration.sidecar_vs_runtime.harness import Mesh

pytestmark = pytest.mark.services


def test_a_handler_raising_value_error_sends_processing_error_to_error_end(
    mesh: Mesh, tid: str
) -> None:
    sent = mesh.send(mesh.route("error"), {"test_id": tid}, job_id=f"job-{tid}")

    [out] = mesh.error_end.expect(tid)

    details = assert_error_end(
        out,
        sent,
        code="processing_error",
        failed_step=mesh.q("error"),
        severity="fatal",
        error_type="ValueError",
    )
    assert details["message"] == handlers.ERROR_MESSAGE
    assert "ValueError" in details["traceback"]
    assert "handlers.py" in details["traceback"]
    assert mesh.happy_end.matching(tid) == []


def test_memory_error_is_a_recoverable_oom_error_sent_straight_to_error_end_without_retries(
    mesh: Mesh, tid: str
) -> None:
    sent = mesh.send(mesh.route("oom"), {"test_id": tid})

    [out] = mesh.error_end.expect(tid, timeout=20)

    details = assert_error_end(
        out,
        sent,
        code="oom_error",
        failed_step=mesh.q("oom"),
        severity="recoverable",
        error_type="MemoryError",
        attempts=1,
    )
    assert handlers.OOM_MESSAGE in details["message"]


def test_cuda_out_of_memory_is_a_recoverable_cuda_oom_error(mesh: Mesh, tid: str) -> None:
    sent = mesh.send(mesh.route("cuda_oom"), {"test_id": tid})

    [out] = mesh.error_end.expect(tid, timeout=20)

    details = assert_error_end(
        out,
        sent,
        code="cuda_oom_error",
        failed_step=mesh.q("cuda_oom"),
        severity="recoverable",
        error_type="RuntimeError",
    )
    assert "CUDA out of memory" in details["message"]


def test_a_handler_slower_than_the_timeout_sends_timeout_error_and_the_next_one_succeeds(
    mesh: Mesh, tid: str
) -> None:
    slow = mesh.send(mesh.route("timeout"), {"test_id": tid, "kind": "slow", "sleep_seconds": 6})
    fast_payload = {"test_id": tid, "kind": "fast", "sleep": 0.1}
    fast = mesh.send(mesh.route("timeout"), fast_payload)

    [out] = mesh.error_end.expect(tid, timeout=20)
    details = assert_error_end(out, slow, code="timeout_error", failed_step=mesh.q("timeout"))
    assert "Runtime timeout exceeded" in details["message"]
    assert f"({TIMEOUT_ACTOR_TIMEOUT})" in details["message"]

    # The abandoned call does not hold up the next message beyond the runtime's replacement.
    [done] = mesh.happy_end.expect(tid, timeout=20)
    assert_routed_to_end(done, fast, {**fast_payload, "slept": 0.1})


def test_a_handler_within_the_timeout_succeeds(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid, "sleep_seconds": 0.5}
    sent = mesh.send(mesh.route("timeout"), payload)

    [out] = mesh.happy_end.expect(tid, timeout=20)

    assert_routed_to_end(out, sent, {**payload, "slept": 0.5})


@pytest.mark.parametrize(
    ("action", "code", "severity", "error_type"),
    [
        ("error", "processing_error", "fatal", "ValueError"),
        ("oom", "oom_error", "recoverable", "MemoryError"),
        ("no-such-action", "processing_error", "fatal", "ValueError"),
    ],
)
def test_conditional_failures_land_in_error_end_with_their_code(
    mesh: Mesh, tid: str, action: str, code: str, severity: str, error_type: str
) -> None:
    sent = mesh.send(mesh.route("conditional"), {"test_id": tid, "action": action})

    [out] = mesh.error_end.expect(tid)

    assert_error_end(
        out,
        sent,
        code=code,
        failed_step=mesh.q("conditional"),
        severity=severity,
        error_type=error_type,
    )


def test_a_failure_at_the_second_step_reports_that_step_and_its_route(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid}
    sent = mesh.send(mesh.route("echo", "error", "unicode"), payload, job_id=f"job-{tid}")

    [out] = mesh.error_end.expect(tid)

    as_received = {**sent, "route": {**sent["route"], "current": 1}}
    assert_error_end(
        out, as_received, code="processing_error", failed_step=mesh.q("error"), severity="fatal"
    )
    assert mesh.happy_end.matching(tid) == []


def _rfc3339(moment: datetime, style: str) -> str:
    if style == "z":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return moment.isoformat()  # 2026-01-01T12:00:00.123456+00:00


@pytest.mark.parametrize("style", ["z", "offset"])
def test_a_passed_deadline_sends_deadline_exceeded_without_calling_the_handler(
    mesh: Mesh, tid: str, style: str
) -> None:
    deadline = _rfc3339(datetime.now(UTC) - timedelta(minutes=1), style)
    # The error handler would answer processing_error if it were called.
    sent = mesh.send(
        mesh.route("error"), {"test_id": tid}, metadata={"deadline": deadline, "owner": "me"}
    )

    [out] = mesh.error_end.expect(tid)

    assert_error_end(out, sent, code="deadline_exceeded", failed_step=mesh.q("error"))
    assert mesh.happy_end.matching(tid) == []


def test_a_future_deadline_lets_the_message_through_with_its_metadata(mesh: Mesh, tid: str) -> None:
    metadata = {"deadline": _rfc3339(datetime.now(UTC) + timedelta(minutes=5), "z"), "k": [1]}
    payload = {"test_id": tid}
    sent = mesh.send(mesh.route("echo"), payload, metadata=metadata)

    [out] = mesh.happy_end.expect(tid)

    assert_routed_to_end(out, sent, payload)
    assert out["route"]["metadata"]["deadline"] == metadata["deadline"]
    assert out["route"]["metadata"]["k"] == [1]


def test_a_message_mode_handler_cannot_rewrite_the_route_behind_it(mesh: Mesh, tid: str) -> None:
    sent = mesh.send(mesh.route("route_extender"), {"test_id": tid, "rewrite_history": True})

    [out] = mesh.error_end.expect(tid)

    details = assert_error_end(
        out, sent, code="processing_error", failed_step=mesh.q("route_extender")
    )
    assert "route" in details["message"]


@pytest.mark.parametrize("returned", [42, "a string"])
def test_a_message_mode_handler_returning_a_non_message_is_a_processing_error(
    mesh: Mesh, tid: str, returned: object
) -> None:
    sent = mesh.send(mesh.route("route_extender"), {"test_id": tid, "return_instead": returned})

    [out] = mesh.error_end.expect(tid)

    assert_error_end(
        out, sent, code="processing_error", failed_step=mesh.q("route_extender"), severity="fatal"
    )


def test_error_end_original_message_is_the_exact_json_of_the_input(mesh: Mesh, tid: str) -> None:
    sent = mesh.send(
        mesh.route("error"),
        {"test_id": tid, "text": "ünïcödé ✓", "n": [1, None]},
        extra_field={"kept": True},
    )

    [out] = mesh.error_end.expect(tid)

    assert json.loads(out["original_message"]) == sent


def test_errors_do_not_stop_the_actor_from_taking_the_next_message(mesh: Mesh, tid: str) -> None:
    started = time.monotonic()
    for index in range(3):
        mesh.send(mesh.route("error"), {"test_id": tid, "n": index})
    ok = {"test_id": tid, "should_fail": False}
    mesh.send(mesh.route("error"), ok)

    mesh.error_end.expect(tid, count=3)
    [out] = mesh.happy_end.expect(tid)

    assert out["payload"] == {**ok, "status": "ok"}
    assert time.monotonic() - started < 20
