"""SSE: the status event, step updates, exact progress checkpoints, replay and replicas."""

from __future__ import annotations

import asyncio
import re

import httpx

from tests.integration.gateway_vs_actors.mesh import (
    Mesh,
    collapse,
    create_job,
    read_stream,
    updates,
    wait_terminal,
)

UPDATE_FIELDS = {
    "job_id", "status", "message", "result", "error", "progress_percent", "step",
    "step_status", "timestamp", "error_details",
}  # fmt: skip


async def test_stream_starts_with_status_then_received_processing_completed_updates(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    job_id = await create_job(client, "test_echo", {"message": "stream me"})

    events = await read_stream(mesh.url, job_id)

    assert events[0].event == "status"
    assert events[0].data in {"Pending", "Running", "Succeeded"}
    assert {e.event for e in events[1:]} == {"update"}
    items = updates(events)
    assert all(set(item) == UPDATE_FIELDS for item in items)
    assert {item["job_id"] for item in items} == {job_id}
    step_items = [item for item in items if item["step"] == mesh.queue("echo")]
    assert collapse([item["step_status"] for item in step_items])[:3] == [
        "received",
        "processing",
        "completed",
    ]
    messages = [item["message"] for item in step_items]
    assert re.fullmatch(r"Received message \(\d+\.\d{2} KB\)", messages[0])
    assert f"Processing in {mesh.queue('echo')}" in messages
    assert any(re.fullmatch(r"Completed processing in \d+(\.\d+)? ?ms", m) for m in messages)
    assert {"status": "Running", "message": "Sending message to first actor"}.items() <= next(
        item for item in items if item["message"] == "Sending message to first actor"
    ).items()
    last = items[-1]
    assert last["status"] == "Succeeded"
    assert last["result"] == {"message": "stream me"}
    assert last["progress_percent"] == 100
    assert last["message"] == "Job completed successfully"
    ids = [int(e.id) for e in events[1:] if e.id is not None]
    assert len(ids) == len(items)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


async def test_two_step_pipeline_reports_exact_progress_checkpoints(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    job_id = await create_job(client, "test_pipeline", {"value": 10})

    items = updates(await read_stream(mesh.url, job_id))

    percents = collapse([float(item["progress_percent"]) for item in items])
    if percents and percents[0] == 0:
        percents = percents[1:]
    assert percents == [5, 25, 50, 55, 75, 100]
    assert items[-1]["result"] == {"value": 25}


async def test_progress_actor_heartbeats_appear_in_the_stream(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    job_id = await create_job(client, "test_progress", {"steps": 3})

    items = updates(await read_stream(mesh.url, job_id))

    heartbeats = [i["message"] for i in items if i["message"] and i["message"].startswith("Step ")]
    assert heartbeats == ["Step 1/3 done", "Step 2/3 done", "Step 3/3 done"]
    beat = next(i for i in items if i["message"] == "Step 1/3 done")
    assert beat["step"] == mesh.queue("progress")
    assert beat["step_status"] == "processing"
    assert beat["progress_percent"] == 50
    assert items[-1]["status"] == "Succeeded"


async def test_job_statuses_move_forward_from_running_to_succeeded(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    job_id = await create_job(client, "test_progress", {"steps": 2})

    statuses = collapse([item["status"] for item in updates(await read_stream(mesh.url, job_id))])

    assert statuses in (["Pending", "Running", "Succeeded"], ["Running", "Succeeded"])


async def test_a_late_subscriber_gets_the_full_replay_and_the_stream_closes(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    job_id = await create_job(client, "test_pipeline", {"value": 1})
    live = await read_stream(mesh.url, job_id)
    await wait_terminal(client, job_id)

    late = await read_stream(mesh.url, job_id, within=10)

    assert late[0].event == "status"
    assert late[0].data == "Succeeded"
    assert [(e.id, e.event, e.json()) for e in late[1:]] == [
        (e.id, e.event, e.json()) for e in live[1:]
    ]


async def test_last_event_id_resumes_after_that_update(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    job_id = await create_job(client, "test_pipeline", {"value": 2})
    full = await read_stream(mesh.url, job_id)
    update_events = full[1:]
    middle = update_events[2]

    resumed = await read_stream(mesh.url, job_id, headers={"Last-Event-ID": str(middle.id)})

    assert [(e.id, e.json()) for e in resumed if e.event == "update"] == [
        (e.id, e.json()) for e in update_events[3:]
    ]


async def test_stream_for_an_unknown_job_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/jobs/00000000-0000-4000-8000-00000000abcd/stream")

    assert response.status_code == 404
    assert response.json() == {"error": "job not found"}


async def test_three_concurrent_jobs_each_stream_their_own_result(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    job_ids = await asyncio.gather(
        *(create_job(client, "test_pipeline", {"value": value}) for value in (1, 2, 3))
    )

    streams = await asyncio.gather(*(read_stream(mesh.url, job_id) for job_id in job_ids))

    assert len(set(job_ids)) == 3
    for job_id, events, expected in zip(job_ids, streams, (7, 9, 11), strict=True):
        items = updates(events)
        assert {item["job_id"] for item in items} == {job_id}
        assert items[-1]["status"] == "Succeeded"
        assert items[-1]["result"] == {"value": expected}
        percents = collapse([float(item["progress_percent"]) for item in items])
        assert percents == sorted(percents)


async def test_a_stream_on_a_replica_shows_updates_made_through_the_other_gateway(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    job_id = await create_job(client, "test_progress", {"steps": 5})

    on_replica = await read_stream(mesh.replica.url, job_id)
    on_origin = await read_stream(mesh.url, job_id, within=10)

    items = updates(on_replica)
    assert items[-1]["status"] == "Succeeded"
    assert items[-1]["result"] == {"steps": 5, "completed": True}
    assert [e.json() for e in on_replica[1:]] == [e.json() for e in on_origin[1:]]
