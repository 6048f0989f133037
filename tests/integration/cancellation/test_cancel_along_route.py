"""Cancelling a job along its route, with real processes (docs/reference/sidecar.md#cancellation):
the handler running it is stopped within a second, nothing reaches happy-end or error-end, and
no later message of the job reaches a runtime, on any sidecar, started before or after."""

from __future__ import annotations

import asyncio

import httpx

from tests.helpers import wait_until
from tests.integration.cancellation.mesh import (
    CancelMesh,
    cancelled_count,
    new_tag,
    wait_pid_gone,
)


async def create(gateway_url: str, tag: str, seconds: float = 30) -> str:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        response = await client.post(
            "/tools/call", json={"name": "sleep", "arguments": {"tag": tag, "seconds": seconds}}
        )
    assert response.status_code == 200, response.text
    job_id: str = response.json()["structuredContent"]["job_id"]
    return job_id


async def cancel(gateway_url: str, job_id: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        response = await client.post(f"/jobs/{job_id}/cancel")
    assert response.status_code == 200, response.text
    job: dict[str, object] = response.json()
    return job


async def status(gateway_url: str, job_id: str) -> str:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        return str((await client.get(f"/jobs/{job_id}")).json()["status"])


async def test_cancel_stops_the_sleeping_handler_within_a_second_and_sends_nothing_on(
    cancel_mesh: CancelMesh,
) -> None:
    mesh = cancel_mesh
    mesh.start_actor()
    url = mesh.gateways[0].url
    tag = new_tag()
    job_id = await create(url, tag)
    worker = await asyncio.to_thread(mesh.wait_call, tag)

    job = await cancel(url, job_id)
    stopped_after = await wait_pid_gone(worker)

    assert job["status"] == "Cancelled"
    assert stopped_after < 1.0
    await asyncio.sleep(1.0)  # anything the actor would send on has been sent by now
    assert await mesh.depth(mesh.happy_end) == 0
    assert await mesh.depth(mesh.error_end) == 0
    assert await status(url, job_id) == "Cancelled"
    assert mesh.calls(tag) == [worker]
    assert cancelled_count(mesh.actors[0]) == 1


async def test_messages_of_a_cancelled_job_never_reach_the_runtime_and_others_still_do(
    cancel_mesh: CancelMesh,
) -> None:
    mesh = cancel_mesh
    actor = mesh.start_actor()
    url = mesh.gateways[0].url
    tag = new_tag()
    job_id = await create(url, tag)
    worker = await asyncio.to_thread(mesh.wait_call, tag)
    await cancel(url, job_id)
    await wait_pid_gone(worker)

    for _ in range(5):  # e.g. the branches of a fan-out, published before the cancel
        await mesh.publish_job_message(job_id, {"tag": tag, "seconds": 0})
    other = new_tag()
    await create(url, other, seconds=0)
    await asyncio.to_thread(mesh.wait_call, other)

    await asyncio.to_thread(
        wait_until, lambda: cancelled_count(actor) == 6, timeout=20, what="6 dropped messages"
    )
    assert mesh.calls(tag) == [worker]
    assert await mesh.depth(mesh.queue) == 0
    assert await mesh.depth(mesh.error_end) == 0


async def test_a_sidecar_started_after_the_cancel_drops_the_jobs_messages(
    cancel_mesh: CancelMesh,
) -> None:
    mesh = cancel_mesh
    url = mesh.gateways[0].url
    tag = new_tag()
    await mesh.depth(mesh.queue)  # declares it
    job_id = await create(url, tag, seconds=0)  # waits in the queue: no actor yet
    await cancel(url, job_id)
    await mesh.publish_job_message(job_id, {"tag": tag, "seconds": 0})

    actor = await asyncio.to_thread(mesh.start_actor)

    await asyncio.to_thread(
        wait_until, lambda: cancelled_count(actor) == 2, timeout=20, what="2 dropped messages"
    )
    assert mesh.calls(tag) == []
    assert await mesh.depth(mesh.happy_end) == 0


async def test_a_sidecar_that_cannot_reach_the_gateway_keeps_processing(
    cancel_mesh: CancelMesh,
) -> None:
    mesh = cancel_mesh
    actor = await asyncio.to_thread(mesh.start_actor, "http://127.0.0.1:9")
    tag = new_tag()

    await mesh.publish_job_message("job-without-gateway", {"tag": tag, "seconds": 0})

    await asyncio.to_thread(mesh.wait_call, tag)
    await asyncio.to_thread(
        wait_until,
        lambda: "cannot follow cancellations" in actor.log_path.read_text(),
        timeout=10,
        what="the warning in the actor's log",
    )


async def test_a_cancel_on_another_gateway_replica_stops_the_handler_too(
    cancel_mesh: CancelMesh,
) -> None:
    mesh = cancel_mesh
    mesh.start_actor()  # follows the first gateway
    replica = await asyncio.to_thread(mesh.start_gateway)
    tag = new_tag()
    job_id = await create(mesh.gateways[0].url, tag)
    worker = await asyncio.to_thread(mesh.wait_call, tag)

    await cancel(replica.url, job_id)
    stopped_after = await wait_pid_gone(worker)

    assert stopped_after < 2.0  # PostgreSQL NOTIFY at once; SQLite's poll within a second
    assert await status(mesh.gateways[0].url, job_id) == "Cancelled"
    assert await mesh.depth(mesh.error_end) == 0
