"""The REST endpoints (docs/reference/gateway-api.md#rest-endpoints) against a served gateway, on
SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from tests.helpers import free_port
from tests.integration.gateway.conftest import RunningGateway, eventually, serve_gateway

CREATED_TEXT = (
    "Job created successfully with ID: {id}\n\nUse the following endpoints:\n"
    "- Status: GET /jobs/{id}\n- Real-time updates: GET /jobs/{id}/stream (SSE)"
)


async def test_tools_call_creates_a_running_job_and_publishes_its_message(
    gateway: RunningGateway,
) -> None:
    response = await gateway.client.post(
        "/tools/call", json={"name": "test_pipeline", "arguments": {"value": 10}}
    )
    assert response.status_code == 200
    body = response.json()
    job_id = body["structuredContent"]["job_id"]
    assert uuid.UUID(job_id).version == 4
    assert body == {
        "content": [{"type": "text", "text": CREATED_TEXT.format(id=job_id)}],
        "structuredContent": {"job_id": job_id},
        "isError": False,
    }
    message = await gateway.sent("step-a")
    assert message["job_id"] == job_id
    assert message["payload"] == {"value": 10, "mode": "fast"}
    assert message["route"]["steps"] == ["step-a", "step-b"]
    assert message["route"]["current"] == 0
    metadata = message["route"]["metadata"]
    assert metadata["job_id"] == job_id
    assert metadata["deadline"].endswith("Z")
    deadline = datetime.fromisoformat(metadata["deadline"])
    assert deadline.utcoffset() == timedelta(0)

    job = await gateway.job(job_id)
    assert set(job) == {
        "id",
        "tool",
        "status",
        "route",
        "payload",
        "result",
        "error",
        "timeout_seconds",
        "deadline",
        "progress_percent",
        "current_step",
        "steps_completed",
        "total_steps",
        "created_at",
        "updated_at",
        "error_details",
    }
    assert job["status"] == "Running"
    assert job["error_details"] is None
    assert job["payload"] == {"value": 10, "mode": "fast"}
    assert job["timeout_seconds"] == 10
    assert job["total_steps"] == 2
    assert job["deadline"] == metadata["deadline"]
    assert job["route"]["metadata"]["job_id"] == job_id


async def test_tools_without_timeout_send_no_deadline(gateway: RunningGateway) -> None:
    job_id = await gateway.call("test_echo", message="hi")
    message = await gateway.sent("step-a")
    assert message["job_id"] == job_id
    # defaults.timeout (30 s) applies to tools that set none
    assert "deadline" in message["route"]["metadata"]
    assert (await gateway.job(job_id))["timeout_seconds"] == 30


async def test_get_tools_lists_every_tool_with_its_schema(gateway: RunningGateway) -> None:
    response = await gateway.client.get("/tools")
    assert response.status_code == 200
    tools = {tool["name"]: tool for tool in response.json()["tools"]}
    assert set(tools) == {
        "test_pipeline",
        "test_echo",
        "test_wait",
        "test_short",
        "test_unroutable",
    }
    schema = tools["test_pipeline"]["inputSchema"]
    assert schema["required"] == ["value"]
    assert schema["properties"]["mode"] == {
        "type": "string",
        "enum": ["fast", "slow"],
        "default": "fast",
    }


async def test_unknown_tool_is_404_and_bad_arguments_are_400_naming_the_problem(
    gateway: RunningGateway,
) -> None:
    client = gateway.client
    unknown = await client.post("/tools/call", json={"name": "nope", "arguments": {}})
    assert unknown.status_code == 404
    assert "nope" in unknown.json()["error"]

    missing = await client.post("/tools/call", json={"name": "test_pipeline", "arguments": {}})
    assert missing.status_code == 400
    assert "value" in missing.json()["error"]

    mistyped = await client.post(
        "/tools/call", json={"name": "test_pipeline", "arguments": {"value": "ten"}}
    )
    assert mistyped.status_code == 400
    assert "integer" in mistyped.json()["error"]

    undeclared = await client.post(
        "/tools/call", json={"name": "test_pipeline", "arguments": {"value": 1, "colour": "red"}}
    )
    assert undeclared.status_code == 400
    assert "colour" in undeclared.json()["error"]

    bad_option = await client.post(
        "/tools/call", json={"name": "test_pipeline", "arguments": {"value": 1, "mode": "warp"}}
    )
    assert bad_option.status_code == 400
    assert "warp" in bad_option.json()["error"]

    not_json = await client.post(
        "/tools/call", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert "JSON" in not_json.json()["error"]

    not_object = await client.post("/tools/call", json=[1, 2])
    assert not_object.status_code == 400

    listing = await client.get("/jobs", params={"limit": 500})
    assert listing.json()["jobs"] == [] or all(
        job["payload"] != {"value": 1, "colour": "red"} for job in listing.json()["jobs"]
    )


async def test_a_body_over_the_limit_is_refused_with_413(gateway: RunningGateway) -> None:
    big = b'{"name": "test_echo", "arguments": {"message": "' + b"x" * (11 * 1024 * 1024) + b'"}}'
    response = await gateway.client.post("/tools/call", content=big)
    assert response.status_code == 413
    assert "ASYA_GATEWAY_MAX_BODY" in response.json()["error"]
    mcp = await gateway.client.post("/mcp", content=big)  # the limit covers MCP too
    assert mcp.status_code == 413

    async def chunks():  # no Content-Length: the limit applies while streaming
        for _ in range(12):
            yield b"x" * (1024 * 1024)

    streamed = await gateway.client.post("/tools/call", content=chunks())
    assert streamed.status_code == 413


async def test_unknown_jobs_are_404_on_every_job_path(gateway: RunningGateway) -> None:
    client = gateway.client
    job_id = str(uuid.uuid4())
    for method, path, body in [
        ("GET", f"/jobs/{job_id}", None),
        ("GET", f"/jobs/{job_id}/stream", None),
        ("GET", f"/jobs/{job_id}/active", None),
        (
            "POST",
            f"/jobs/{job_id}/progress",
            {"step": "a", "step_index": 0, "total_steps": 1, "status": "received"},
        ),
        ("POST", f"/jobs/{job_id}/heartbeat", {"actor_name": "a", "status": "processing"}),
        ("POST", f"/jobs/{job_id}/final", {"status": "succeeded", "result": 1}),
    ]:
        response = await client.request(method, path, json=body)
        assert response.status_code == 404, path
        assert response.json() == {"error": "job not found"}, path


async def test_progress_checkpoints_of_a_two_step_route(gateway: RunningGateway) -> None:
    job_id = await gateway.call("test_pipeline", value=10)
    seen = []
    for index in (0, 1):
        for status in ("received", "processing", "completed"):
            seen.append(await gateway.progress(job_id, index, status))
    assert seen == [5, 25, 50, 55, 75, 100]
    job = await gateway.job(job_id)
    assert job["status"] == "Running"
    assert job["progress_percent"] == 100
    assert job["steps_completed"] == 2
    assert job["current_step"] == "step-b"


async def test_progress_never_goes_down(gateway: RunningGateway) -> None:
    job_id = await gateway.call("test_pipeline", value=1)
    assert await gateway.progress(job_id, 1, "processing") == 75
    assert await gateway.progress(job_id, 0, "received") == 75
    assert (await gateway.job(job_id))["progress_percent"] == 75


async def test_final_success_sets_result_and_a_second_final_changes_nothing(
    gateway: RunningGateway,
) -> None:
    job_id = await gateway.call("test_pipeline", value=10)
    await gateway.progress(job_id, 0, "received")
    first = await gateway.client.post(
        f"/jobs/{job_id}/final", json={"status": "succeeded", "result": {"value": 25}}
    )
    assert first.status_code == 200
    second = await gateway.client.post(
        f"/jobs/{job_id}/final", json={"status": "failed", "error": "late"}
    )
    assert second.status_code == 200
    late_progress = await gateway.client.post(
        f"/jobs/{job_id}/progress",
        json={"step": "step-a", "step_index": 0, "total_steps": 2, "status": "received"},
    )
    assert late_progress.status_code == 200
    assert late_progress.json() == {"status": "ok", "progress_percent": 100}
    job = await gateway.job(job_id)
    assert job["status"] == "Succeeded"
    assert job["result"] == {"value": 25}
    assert job["error"] is None
    assert job["progress_percent"] == 100


async def test_final_failure_keeps_progress_and_sets_the_error(gateway: RunningGateway) -> None:
    job_id = await gateway.call("test_pipeline", value=10)
    await gateway.progress(job_id, 0, "processing")
    response = await gateway.client.post(
        f"/jobs/{job_id}/final", json={"status": "failed", "error": "processing_error: boom"}
    )
    assert response.status_code == 200
    job = await gateway.job(job_id)
    assert job["status"] == "Failed"
    assert job["error"] == "processing_error: boom"
    assert job["progress_percent"] == 25


async def test_heartbeats_map_to_step_progress_and_error_fails_the_job(
    gateway: RunningGateway,
) -> None:
    job_id = await gateway.call("test_pipeline", value=10)
    hb = await gateway.client.post(
        f"/jobs/{job_id}/heartbeat",
        json={"actor_name": "step-b", "status": "picked_up", "message": "got it"},
    )
    assert hb.status_code == 200
    assert (await gateway.job(job_id))["progress_percent"] == 55
    await gateway.client.post(
        f"/jobs/{job_id}/heartbeat",
        json={"actor_name": "step-b", "status": "error", "message": "model exploded"},
    )
    job = await gateway.job(job_id)
    assert job["status"] == "Failed"
    assert job["error"] == "model exploded"
    assert job["progress_percent"] == 55


async def test_bad_actor_reports_are_400(gateway: RunningGateway) -> None:
    job_id = await gateway.call("test_pipeline", value=10)
    client = gateway.client
    for path, body in [
        ("progress", {"step": "a", "step_index": 0, "total_steps": 2, "status": "dancing"}),
        ("progress", {"step": "a", "step_index": "0", "total_steps": 2, "status": "received"}),
        ("progress", {"step": "a", "step_index": 0, "total_steps": 0, "status": "received"}),
        ("heartbeat", {"actor_name": "a", "status": "sleeping"}),
        ("final", {"status": "maybe"}),
    ]:
        response = await client.post(f"/jobs/{job_id}/{path}", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]
    assert (await gateway.job(job_id))["progress_percent"] == 0


async def test_active_is_200_while_running_and_410_once_terminal(gateway: RunningGateway) -> None:
    job_id = await gateway.call("test_pipeline", value=10)
    active = await gateway.client.get(f"/jobs/{job_id}/active")
    assert (active.status_code, active.json()) == (200, {"active": True})
    await gateway.client.post(f"/jobs/{job_id}/final", json={"status": "succeeded", "result": 1})
    gone = await gateway.client.get(f"/jobs/{job_id}/active")
    assert (gone.status_code, gone.json()) == (410, {"active": False})


async def test_a_failed_publish_fails_the_job_and_answers_503(gateway: RunningGateway) -> None:
    response = await gateway.client.post(
        "/tools/call", json={"name": "test_unroutable", "arguments": {}}
    )
    assert response.status_code == 503
    body = response.json()
    assert "no-such-queue" in body["error"]
    job = await gateway.job(body["job_id"])
    assert job["status"] == "Failed"
    assert "no-such-queue" in job["error"]


async def test_the_sweeper_fails_a_job_past_its_deadline(gateway: RunningGateway) -> None:
    started = time.monotonic()
    job_id = await gateway.call("test_short")
    assert (await gateway.job(job_id))["status"] == "Running"

    async def failed() -> dict[str, Any] | None:
        job = await gateway.job(job_id)
        return job if job["status"] == "Failed" else None

    job = await eventually(failed, limit=6)
    # timeout 1 s + "within a second", with room for a loaded machine
    assert time.monotonic() - started < 3.5
    assert job["error"] == "job timed out after 1 s"
    assert job["route"]["metadata"]["deadline"] == job["deadline"]
    gone = await gateway.client.get(f"/jobs/{job_id}/active")
    assert gone.status_code == 410


async def test_health_ready_and_metrics_answer(gateway: RunningGateway) -> None:
    health = await gateway.client.get("/health")
    assert (health.status_code, health.text) == (200, "OK")
    ready = await gateway.client.get("/ready")
    assert ready.status_code == 200, ready.text
    job_id = await gateway.call("test_echo", message="m")
    await gateway.client.post(f"/jobs/{job_id}/final", json={"status": "failed", "error": "x"})
    metrics = await gateway.client.get("/metrics")
    assert metrics.status_code == 200
    assert 'asya_gateway_jobs_created_total{tool="test_echo"} 1.0' in metrics.text
    assert 'asya_gateway_jobs_finished_total{status="Failed",tool="test_echo"} 1.0' in metrics.text
    assert "asya_gateway_request_duration_seconds_bucket" in metrics.text
    # latency is labelled by the route template, not the raw path (or "unmatched")
    assert 'method="POST",route="/jobs/{job_id}/final",status="200"' in metrics.text
    assert 'method="POST",route="/tools/call",status="200"' in metrics.text
    assert "asya_gateway_sse_clients" in metrics.text


async def test_an_unreachable_broker_makes_ready_503_and_calls_fail_with_the_job_id(
    sqlite_url: str,
) -> None:
    dead_broker = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    async with serve_gateway(sqlite_url, transport_url=dead_broker) as gateway:
        ready = await gateway.client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["database"] == "ok"
        assert ready.json()["broker"].startswith("unavailable")
        call = await gateway.client.post(
            "/tools/call", json={"name": "test_echo", "arguments": {"message": "m"}}
        )
        assert call.status_code == 503
        job = await gateway.job(call.json()["job_id"])
        assert job["status"] == "Failed"
        assert job["error"] == call.json()["error"]


async def test_results_of_every_json_kind_come_back_unchanged(gateway: RunningGateway) -> None:
    for result in ["abc", "42", 42, 1.5, True, None, [1, "a"], {"nested": {"x": [None]}}]:
        job_id = await gateway.call("test_echo", message="m")
        final = {"status": "succeeded", "result": result}
        assert (await gateway.client.post(f"/jobs/{job_id}/final", json=final)).status_code == 200
        assert (await gateway.job(job_id))["result"] == result, result
