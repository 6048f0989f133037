"""Jobs that fail: a raising handler, a handler past its timeout, a job nobody answers, a
poison message."""

from __future__ import annotations

import asyncio
import time

import aio_pika
import httpx
import orjson

from asya.transports.delivery_count import COUNT_HEADER
from tests.integration.gateway_vs_actors.mesh import (
    Mesh,
    actor_headers,
    create_job,
    read_stream,
    updates,
    wait_terminal,
)


async def test_error_fails_the_job_with_the_handler_error_and_progress_below_100(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    job_id = await create_job(client, "test_error", {"reason": "bad input"})

    job = await wait_terminal(client, job_id)
    items = updates(await read_stream(mesh.url, job_id, within=10))

    assert job["status"] == "Failed"
    assert job["error"] == "processing_error: Simulated failure: bad input"
    assert 0 <= job["progress_percent"] < 100
    assert job["result"] is None
    last = items[-1]
    assert last["status"] == "Failed"
    assert last["error"] == job["error"]
    assert last["message"] == f"Job failed: {job['error']}"
    assert "completed" not in {item["step_status"] for item in items}


async def test_timeout_fails_the_job_with_the_sidecar_timeout(client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    job_id = await create_job(client, "test_timeout", {})

    job = await wait_terminal(client, job_id, within=30)

    assert job["status"] == "Failed"
    assert job["error"] == "timeout_error: Runtime timeout exceeded (5s)"
    assert job["progress_percent"] < 100
    assert job["timeout_seconds"] == 10
    assert 4 <= time.monotonic() - started < 12


async def test_a_job_nobody_answers_fails_when_its_deadline_passes(
    client: httpx.AsyncClient,
) -> None:
    started = time.monotonic()
    job_id = await create_job(client, "test_unanswered", {})

    job = await wait_terminal(client, job_id, within=15)

    assert job["status"] == "Failed"
    assert job["error"] == "job timed out after 2 s"
    assert 1.5 <= time.monotonic() - started < 6


async def test_an_error_heartbeat_fails_the_job_and_the_later_success_is_ignored(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    job_id = await create_job(client, "test_progress", {"steps": 6})

    response = await client.post(
        f"/jobs/{job_id}/heartbeat",
        json={"actor_name": mesh.queue("progress"), "status": "error", "message": "GPU lost"},
        headers=actor_headers(),
    )
    failed = await wait_terminal(client, job_id)
    events = await read_stream(mesh.url, job_id, within=10)
    await asyncio.sleep(3.0)  # the handler (6 × 0.3 s) ends; the crew's success must not count

    assert response.status_code == 200
    assert failed["status"] == "Failed"
    assert failed["error"] == "GPU lost"
    assert (await client.get(f"/jobs/{job_id}")).json() == failed
    assert updates(events)[-1]["status"] == "Failed"
    again = await read_stream(mesh.url, job_id, within=10)
    assert [(e.event, e.data) for e in again] == [(e.event, e.data) for e in events]


async def test_a_poison_message_fails_its_job_with_poison_message(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    """A message of the job reaches the echo actor already delivered 5 times (the count a
    classic queue's consumer keeps after five crashes): it is parked, the job fails with it."""
    job_id = await create_job(client, "test_parked", {})  # its own message waits unconsumed
    echo = mesh.queue("echo")
    body = orjson.dumps(
        {"job_id": job_id, "route": {"steps": [echo], "current": 0}, "payload": {"n": 1}}
    )
    connection = await aio_pika.connect(mesh.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(mesh.exchange)
        await exchange.publish(
            aio_pika.Message(body, headers={COUNT_HEADER: 6}, delivery_mode=2), routing_key=echo
        )

    job = await wait_terminal(client, job_id, within=30)

    assert job["status"] == "Failed"
    assert job["error"].startswith("poison_message: message parked after 5 deliveries")
    details = job["error_details"]
    assert details["code"] == "poison_message"
    assert details["deliveries"] == 5
    assert details["last_error"] is None
    assert details["failed_step"] == echo
