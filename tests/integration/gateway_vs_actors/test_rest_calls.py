"""REST tool calls: the exact CallToolResult, the job's life, and every bad input refused whole."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.integration.gateway_vs_actors.mesh import (
    Mesh,
    actor_headers,
    create_job,
    read_stream,
    updates,
    wait_terminal,
)

JOB_FIELDS = {
    "id", "status", "route", "payload", "result", "error", "timeout_seconds", "deadline",
    "progress_percent", "current_step", "steps_completed", "total_steps", "created_at",
    "updated_at",
}  # fmt: skip
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


async def job_ids(client: httpx.AsyncClient) -> set[str]:
    response = await client.get("/jobs", params={"limit": 500})
    assert response.status_code == 200
    return {job["id"] for job in response.json()["jobs"]}


async def test_echo_tool_call_creates_a_job_that_succeeds_with_the_payload(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    job_id = await create_job(client, "test_echo", {"message": "hello"})

    job = await wait_terminal(client, job_id)

    assert UUID4.match(job_id)
    assert set(job) >= JOB_FIELDS
    assert job["id"] == job_id
    assert job["status"] == "Succeeded"
    assert job["result"] == {"message": "hello"}
    assert job["payload"] == {"message": "hello"}
    assert job["error"] is None
    assert job["progress_percent"] == 100
    assert job["route"]["steps"] == [mesh.queue("echo")]
    assert job["total_steps"] == 1
    assert job["steps_completed"] == 1
    assert job["current_step"] == mesh.queue("echo")
    assert job["timeout_seconds"] == 30
    assert RFC3339.match(job["created_at"])
    assert RFC3339.match(job["updated_at"])
    assert RFC3339.match(job["deadline"])


async def test_job_is_running_once_the_call_returns_then_succeeds(
    client: httpx.AsyncClient,
) -> None:
    job_id = await create_job(client, "test_progress", {"steps": 5})

    first = (await client.get(f"/jobs/{job_id}")).json()
    job = await wait_terminal(client, job_id)

    assert first["status"] == "Running"
    assert job["status"] == "Succeeded"
    assert job["result"] == {"steps": 5, "completed": True}


async def test_pipeline_doubles_then_adds_five(client: httpx.AsyncClient, mesh: Mesh) -> None:
    job_id = await create_job(client, "test_pipeline", {"value": 10})

    job = await wait_terminal(client, job_id)

    assert job["status"] == "Succeeded"
    assert job["result"] == {"value": 25}
    assert job["payload"] == {"value": 10, "mode": "fast"}
    assert job["steps_completed"] == 2
    assert job["total_steps"] == 2
    assert job["route"]["steps"] == [mesh.queue("doubler"), mesh.queue("incrementer")]


async def test_tools_lists_every_tool_with_its_schema(client: httpx.AsyncClient) -> None:
    response = await client.get("/tools")

    assert response.status_code == 200
    body: Any = response.json()
    tools = body["tools"] if isinstance(body, dict) else body
    by_name = {tool["name"]: tool for tool in tools}
    assert set(by_name) == {
        "test_echo", "test_progress", "test_pipeline", "test_pipeline_wait", "test_error",
        "test_timeout", "test_unanswered", "test_echo_text_wait", "test_error_wait",
        "test_fanout", "test_fanout_nested", "test_parked",
    }  # fmt: skip
    schema = by_name["test_pipeline"]["inputSchema"]
    assert schema["type"] == "object"
    assert schema["required"] == ["value"]
    assert schema["properties"]["value"]["type"] == "integer"
    assert schema["properties"]["mode"]["enum"] == ["fast", "slow"]
    assert schema["properties"]["mode"]["default"] == "fast"


async def test_jobs_list_is_newest_first_and_filters_by_status(
    client: httpx.AsyncClient,
) -> None:
    first = await create_job(client, "test_echo", {"message": "one"})
    second = await create_job(client, "test_echo", {"message": "two"})
    await wait_terminal(client, first)
    await wait_terminal(client, second)

    newest = (await client.get("/jobs", params={"limit": 2})).json()["jobs"]
    succeeded = (await client.get("/jobs", params={"status": "Succeeded"})).json()["jobs"]

    assert [job["id"] for job in newest] == [second, first]
    assert succeeded
    assert {job["status"] for job in succeeded} == {"Succeeded"}


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"name": "no_such_tool", "arguments": {}}, 404, "no_such_tool"),
        ({"name": "test_pipeline", "arguments": {}}, 400, "value"),
        ({"name": "test_pipeline", "arguments": {"value": "ten"}}, 400, "value"),
        ({"name": "test_pipeline", "arguments": {"value": 1, "mode": "medium"}}, 400, "mode"),
        ({"name": "test_pipeline", "arguments": {"value": 1, "colour": "red"}}, 400, "colour"),
        ({"arguments": {"value": 1}}, 400, "name"),
        ({"name": "test_pipeline", "arguments": [10]}, 400, "arguments"),
        ([{"name": "test_pipeline"}], 400, "object"),
    ],
    ids=[
        "unknown-tool",
        "missing",
        "mistyped",
        "not-an-option",
        "undeclared",
        "no-name",
        "arguments-not-object",
        "body-not-object",
    ],
)
async def test_a_bad_tool_call_is_refused_with_a_clear_error_and_creates_no_job(
    client: httpx.AsyncClient, body: Any, status: int, fragment: str
) -> None:
    before = await job_ids(client)

    response = await client.post("/tools/call", json=body)

    assert response.status_code == status
    assert fragment in response.json()["error"]
    assert await job_ids(client) == before


async def test_a_body_that_is_not_json_is_refused_with_400(client: httpx.AsyncClient) -> None:
    before = await job_ids(client)

    response = await client.post(
        "/tools/call", content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"]
    assert await job_ids(client) == before


async def test_an_oversized_body_is_refused_with_413(mesh: Mesh) -> None:
    """The replica runs with ASYA_GATEWAY_MAX_BODY=65536."""
    async with httpx.AsyncClient(base_url=mesh.replica.url, timeout=30) as replica:
        before = await job_ids(replica)

        response = await replica.post(
            "/tools/call",
            json={"name": "test_echo", "arguments": {"message": "x" * 100_000}},
        )

        assert response.status_code == 413
        assert await job_ids(replica) == before


async def test_an_oversized_chunked_body_is_refused_with_413(mesh: Mesh) -> None:
    """No Content-Length to trust: the limit must hold while reading."""

    async def chunks() -> Any:
        yield b'{"name": "test_echo", "arguments": {"message": "'
        for _ in range(10):
            yield b"x" * 10_000
        yield b'"}}'

    async with httpx.AsyncClient(base_url=mesh.replica.url, timeout=30) as replica:
        before = await job_ids(replica)

        response = await replica.post(
            "/tools/call", content=chunks(), headers={"Content-Type": "application/json"}
        )

        assert response.status_code == 413
        assert await job_ids(replica) == before


async def test_every_job_path_answers_404_for_an_unknown_job(client: httpx.AsyncClient) -> None:
    ghost = "00000000-0000-4000-8000-000000000000"
    progress = {
        "step": "x", "step_index": 0, "total_steps": 1, "status": "received",
        "actor_name": "x", "message": "Received message (0.01 KB)",
    }  # fmt: skip
    heartbeat = {"actor_name": "x", "status": "processing", "message": "alive"}
    final = {"status": "succeeded", "result": 1}

    answers = [
        await client.get(f"/jobs/{ghost}"),
        await client.get(f"/jobs/{ghost}/stream"),
        await client.get(f"/jobs/{ghost}/active", headers=actor_headers()),
        await client.post(f"/jobs/{ghost}/progress", json=progress, headers=actor_headers()),
        await client.post(f"/jobs/{ghost}/heartbeat", json=heartbeat, headers=actor_headers()),
        await client.post(f"/jobs/{ghost}/final", json=final, headers=actor_headers()),
    ]

    assert [r.status_code for r in answers] == [404] * 6
    assert [r.json() for r in answers] == [{"error": "job not found"}] * 6
    assert ghost not in await job_ids(client)


async def test_a_second_final_is_answered_but_changes_nothing(client: httpx.AsyncClient) -> None:
    job_id = await create_job(client, "test_echo", {"message": "once"})
    done = await wait_terminal(client, job_id)

    late_final = await client.post(
        f"/jobs/{job_id}/final",
        json={"status": "failed", "error": "late"},
        headers=actor_headers(),
    )
    late_progress = await client.post(
        f"/jobs/{job_id}/progress",
        json={
            "step": "x",
            "step_index": 0,
            "total_steps": 1,
            "status": "received",
            "actor_name": "x",
            "message": "late",
        },
        headers=actor_headers(),
    )

    assert late_final.status_code == 200
    assert late_progress.status_code == 200
    assert (await client.get(f"/jobs/{job_id}")).json() == done


async def test_active_is_200_while_running_and_410_once_terminal(
    client: httpx.AsyncClient,
) -> None:
    job_id = await create_job(client, "test_progress", {"steps": 4})

    running = await client.get(f"/jobs/{job_id}/active", headers=actor_headers())
    await wait_terminal(client, job_id)
    finished = await client.get(f"/jobs/{job_id}/active", headers=actor_headers())

    assert (running.status_code, running.json()) == (200, {"active": True})
    assert (finished.status_code, finished.json()) == (410, {"active": False})


async def test_health_and_metrics_answer(client: httpx.AsyncClient) -> None:
    await wait_terminal(client, await create_job(client, "test_echo", {"message": "count me"}))

    health = await client.get("/health")
    metrics = await client.get("/metrics")

    assert (health.status_code, health.text) == (200, "OK")
    assert metrics.status_code == 200
    assert "# TYPE" in metrics.text
    assert 'tool="test_echo"' in metrics.text


async def test_progress_reports_follow_the_formula_and_never_go_back(
    client: httpx.AsyncClient,
) -> None:
    """Nobody consumes test_unanswered's queue: only these reports move the job."""
    job_id = await create_job(client, "test_unanswered", {})

    async def report(step_index: int, total: int, status: str) -> object:
        response = await client.post(
            f"/jobs/{job_id}/progress",
            json={
                "step": f"s{step_index}",
                "step_index": step_index,
                "total_steps": total,
                "status": status,
                "actor_name": f"s{step_index}",
                "message": status,
            },
            headers=actor_headers(),
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "ok"
        return body["progress_percent"]

    answers = [
        await report(0, 4, "received"),
        await report(0, 4, "processing"),
        await report(0, 4, "completed"),
        await report(0, 4, "received"),  # a redelivery: the percent stays
        await report(1, 4, "completed"),
    ]
    job = (await client.get(f"/jobs/{job_id}")).json()

    assert answers == [2.5, 12.5, 25, 25, 50]
    assert job["progress_percent"] == 50
    assert job["steps_completed"] == 2
    assert job["current_step"] == "s1"


async def test_malformed_actor_reports_are_refused_with_400_and_leave_no_trace(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    job_id = await create_job(client, "test_unanswered", {})
    bad_progress = {
        "step": "s", "step_index": 0, "total_steps": 1, "status": "bogus",
        "actor_name": "s", "message": "bogus progress",
    }  # fmt: skip
    bad_final = {"status": "maybe", "error": "bogus final"}

    answers = [
        await client.post(f"/jobs/{job_id}/progress", json=bad_progress, headers=actor_headers()),
        await client.post(f"/jobs/{job_id}/progress", content=b"not json", headers=actor_headers()),
        await client.post(
            f"/jobs/{job_id}/heartbeat",
            json={"actor_name": "s", "status": "exploded", "message": "bogus heartbeat"},
            headers=actor_headers(),
        ),
        await client.post(f"/jobs/{job_id}/final", json=bad_final, headers=actor_headers()),
    ]
    job = await wait_terminal(client, job_id, within=15)
    items = updates(await read_stream(mesh.url, job_id, within=10))

    assert [r.status_code for r in answers] == [400] * 4
    assert all(r.json()["error"] for r in answers)
    assert job["status"] == "Failed"
    assert job["error"] == "job timed out after 2 s"
    assert not [item for item in items if "bogus" in (item["message"] or "")]
