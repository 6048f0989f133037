"""SSE streams: status first, replay, live updates, Last-Event-ID, close when terminal."""

from __future__ import annotations

import asyncio

from tests.integration.gateway.conftest import (
    RunningGateway,
    eventually,
    read_events,
    serve_gateway,
)

UPDATE_FIELDS = {
    "job_id",
    "status",
    "message",
    "result",
    "error",
    "progress_percent",
    "step",
    "step_status",
    "timestamp",
    "error_details",
}


async def _finish(gateway: RunningGateway, job_id: str) -> None:
    for index in (0, 1):
        for status in ("received", "processing", "completed"):
            await gateway.progress(job_id, index, status)
    response = await gateway.client.post(
        f"/jobs/{job_id}/final", json={"status": "succeeded", "result": {"value": 25}}
    )
    assert response.status_code == 200


async def test_a_late_subscriber_gets_status_then_the_replay_and_the_stream_closes(
    gateway: RunningGateway,
) -> None:
    job_id = await gateway.call("test_pipeline", value=10)
    await _finish(gateway, job_id)

    events = await read_events(gateway.client, job_id)

    assert (events[0].event, events[0].data) == ("status", "Succeeded")
    updates = events[1:]
    assert all(event.event == "update" for event in updates)
    assert [int(event.id or 0) for event in updates] == list(range(1, len(updates) + 1))
    data = [event.json() for event in updates]
    assert all(set(item) == UPDATE_FIELDS for item in data)
    assert data[0]["message"] == "Sending message to first actor"
    assert data[0]["status"] == "Running"
    steps = [(item["step"], item["step_status"], item["progress_percent"]) for item in data[1:-1]]
    assert steps == [
        ("step-a", "received", 5),
        ("step-a", "processing", 25),
        ("step-a", "completed", 50),
        ("step-b", "received", 55),
        ("step-b", "processing", 75),
        ("step-b", "completed", 100),
    ]
    assert data[1]["message"] == "received at 0"
    assert data[-1]["status"] == "Succeeded"
    assert data[-1]["message"] == "Job completed successfully"
    assert data[-1]["result"] == {"value": 25}
    assert data[-1]["step"] is None


async def test_last_event_id_resumes_after_that_update(gateway: RunningGateway) -> None:
    job_id = await gateway.call("test_pipeline", value=10)
    await _finish(gateway, job_id)
    all_events = await read_events(gateway.client, job_id)
    resumed = await read_events(gateway.client, job_id, headers={"Last-Event-ID": "4"})
    assert resumed[0].event == "status"
    assert [event.id for event in resumed[1:]] == [event.id for event in all_events[5:]]


async def test_live_updates_arrive_in_order_and_the_stream_closes_after_the_terminal_one(
    gateway: RunningGateway,
) -> None:
    job_id = await gateway.call("test_pipeline", value=10)
    opened = asyncio.Event()
    reader = asyncio.create_task(read_events(gateway.client, job_id, on_open=opened.set))
    await asyncio.wait_for(opened.wait(), 10)
    await _finish(gateway, job_id)
    events = await asyncio.wait_for(reader, 15)
    assert events[0].data == "Running"
    percents = [event.json()["progress_percent"] for event in events[1:]]
    assert percents == [0, 5, 25, 50, 55, 75, 100, 100]
    assert events[-1].json()["status"] == "Succeeded"


async def test_a_failed_job_streams_its_error(gateway: RunningGateway) -> None:
    job_id = await gateway.call("test_pipeline", value=10)
    await gateway.progress(job_id, 0, "processing")
    await gateway.client.post(f"/jobs/{job_id}/final", json={"status": "failed", "error": "boom"})
    events = await read_events(gateway.client, job_id)
    last = events[-1].json()
    assert (last["status"], last["error"], last["message"]) == (
        "Failed",
        "boom",
        "Job failed: boom",
    )
    assert last["progress_percent"] == 25


async def test_idle_streams_get_keepalive_comments_and_disconnects_are_noticed(
    sqlite_url: str,
) -> None:
    async with serve_gateway(sqlite_url, sse_keepalive=0.2) as gateway:
        job_id = await gateway.call("test_pipeline", value=1)
        comments = 0
        async with gateway.client.stream("GET", f"/jobs/{job_id}/stream") as response:
            async for line in response.aiter_lines():
                if line.startswith(":"):
                    comments += 1
                    if comments == 2:
                        break
        assert comments == 2

        async def clients() -> float:
            text = (await gateway.client.get("/metrics")).text
            line = next(x for x in text.splitlines() if x.startswith("asya_gateway_sse_clients "))
            return float(line.split()[1])

        async def no_clients() -> bool:
            return await clients() == 0

        await eventually(no_clients)
