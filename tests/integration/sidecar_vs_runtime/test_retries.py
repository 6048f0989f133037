"""Recoverable errors with ``ASYA_MAX_RETRIES`` set: retried, counted, then error-end.

The oom-retry actor runs with ``ASYA_MAX_RETRIES=1``. An ``oom_error`` carries
``retry_after: 30``, which overrides the shorter backoff, so one retry takes about 30 s; both
messages are sent together so the test waits for that only once.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.sidecar_vs_runtime.checks import assert_error_end, assert_routed_to_end
from tests.integration.sidecar_vs_runtime.conftest import OOM_RETRY_MAX_RETRIES
from tests.integration.sidecar_vs_runtime.harness import Mesh

pytestmark = [pytest.mark.services, pytest.mark.slow]

OOM_RETRY_AFTER = 30


@pytest.mark.timeout(180)
def test_oom_errors_are_retried_with_their_retry_after_and_attempts_are_counted(
    mesh: Mesh, tid: str
) -> None:
    queue = mesh.q("oom_retry")
    always = mesh.send([queue], {"test_id": f"{tid}-always", "fail_times": 99})
    once_payload = {"test_id": f"{tid}-once", "fail_times": 1}
    once = mesh.send([queue], once_payload)
    started = time.monotonic()

    # Retries never block the consumer: a third message is served while both wait.
    unrelated = mesh.send([queue], {"test_id": f"{tid}-ok", "fail_times": 0})
    [fast] = mesh.happy_end.wait_for(f"{tid}-ok", timeout=20)
    assert fast.data["payload"]["succeeded_on_attempt"] == 0
    assert_routed_to_end(fast.data, unrelated, fast.data["payload"])
    assert time.monotonic() - started < OOM_RETRY_AFTER / 2

    [failed] = mesh.error_end.wait_for(tid, timeout=OOM_RETRY_AFTER + 60)
    details = assert_error_end(
        failed.data,
        None,
        code="oom_error",
        failed_step=queue,
        severity="recoverable",
        error_type="MemoryError",
        attempts=OOM_RETRY_MAX_RETRIES + 1,
    )
    assert details["message"]
    assert failed.data["payload"] == always["payload"]
    assert failed.data["route"]["steps"] == [queue]
    assert failed.data["route"]["current"] == 0
    assert time.monotonic() - started >= OOM_RETRY_AFTER - 1, "retry_after was not honoured"

    [succeeded] = mesh.happy_end.wait_for(f"{tid}-once", timeout=30)
    assert succeeded.data["payload"] == {**once_payload, "succeeded_on_attempt": 1}
    assert succeeded.data["route"]["current"] == 1
    assert succeeded.data["route"]["steps"] == once["route"]["steps"]

    time.sleep(1)
    assert len(mesh.error_end.matching(tid)) == 1
    assert len(mesh.happy_end.matching(tid)) == 2
