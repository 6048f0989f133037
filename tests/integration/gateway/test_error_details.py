"""A failed job keeps the cause of its failure: ``error_details`` from error-end's report, or made
by the gateway for its own failures (deadline, heartbeat error, publish), through REST and SSE."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.integration.gateway.conftest import RunningGateway, eventually, read_events

DETAILS = {
    "code": "processing_error",
    "message": "'missing_key'",
    "type": "KeyError",
    "traceback": 'Traceback (most recent call last):\n  File "h.py", line 3, in parse\n'
    "    return p[\"missing_key\"]\nKeyError: 'missing_key'\n",
    "failed_step": "step-b",
    "branch": None,
    "attempts": 1,
    "severity": "fatal",
}


async def _fail(gateway: RunningGateway, job_id: str, **body: Any) -> int:
    response = await gateway.client.post(
        f"/jobs/{job_id}/final",
        json={"status": "failed", "error": "processing_error: 'missing_key'", **body},
    )
    return response.status_code


async def test_error_end_details_are_stored_and_returned_by_rest_and_the_sse_final_update(
    gateway: RunningGateway,
) -> None:
    job_id = await gateway.call("test_pipeline", value=10)
    opened = asyncio.Event()
    live = asyncio.create_task(read_events(gateway.client, job_id, on_open=opened.set))
    await asyncio.wait_for(opened.wait(), 10)

    assert await _fail(gateway, job_id, error_details=DETAILS) == 200

    job = await gateway.job(job_id)
    assert job["status"] == "Failed"
    assert job["error"] == "processing_error: 'missing_key'"
    assert job["error_details"] == DETAILS
    live_events = await asyncio.wait_for(live, 15)
    replayed = await read_events(gateway.client, job_id)
    for events in (live_events, replayed):
        final = events[-1].json()
        assert final["status"] == "Failed"
        assert final["error_details"] == DETAILS
        assert all(event.json()["error_details"] is None for event in events[1:-1])


@pytest.mark.parametrize(
    "details",
    ["KeyError", ["KeyError"], 3, {"type": 3}, {"attempts": "1"}, {"branch": "2/5"}],
)
async def test_error_details_of_the_wrong_shape_are_400_and_leave_the_job_running(
    gateway: RunningGateway, details: Any
) -> None:
    job_id = await gateway.call("test_echo", message="hi")

    response = await gateway.client.post(
        f"/jobs/{job_id}/final",
        json={"status": "failed", "error": "x", "error_details": details},
    )

    assert response.status_code == 400
    assert "error_details" in response.json()["error"]
    assert (await gateway.job(job_id))["status"] == "Running"


async def test_a_report_without_details_gets_them_from_its_error_text(
    gateway: RunningGateway,
) -> None:
    job_id = await gateway.call("test_echo", message="hi")

    assert await _fail(gateway, job_id) == 200

    details = (await gateway.job(job_id))["error_details"]
    assert details["code"] == "processing_error"
    assert details["message"] == "'missing_key'"
    assert details["type"] is None


async def test_a_heartbeat_error_and_the_deadline_sweeper_fill_error_details(
    gateway: RunningGateway,
) -> None:
    beaten = await gateway.call("test_pipeline", value=10)
    await gateway.client.post(
        f"/jobs/{beaten}/heartbeat",
        json={"actor_name": "step-b", "status": "error", "message": "model exploded"},
    )
    expired = await gateway.call("test_short")

    async def failed() -> dict[str, Any] | None:
        job = await gateway.job(expired)
        return job if job["status"] == "Failed" else None

    timed_out = await eventually(failed, limit=6)
    heartbeat = (await gateway.job(beaten))["error_details"]

    assert heartbeat["code"] == "heartbeat_error"
    assert heartbeat["message"] == "model exploded"
    assert heartbeat["failed_step"] == "step-b"
    assert timed_out["error"] == "job timed out after 1 s"
    assert timed_out["error_details"]["code"] == "deadline_exceeded"
    assert timed_out["error_details"]["message"] == "the job's deadline passed after 1 s"


async def test_a_failed_publish_names_the_first_step_in_error_details(
    gateway: RunningGateway,
) -> None:
    response = await gateway.client.post(
        "/tools/call", json={"name": "test_unroutable", "arguments": {}}
    )

    job = await gateway.job(response.json()["job_id"])
    assert job["error_details"]["code"] == "publish_error"
    assert job["error_details"]["failed_step"] == "no-such-queue"
