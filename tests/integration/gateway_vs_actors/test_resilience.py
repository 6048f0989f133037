"""The gateway without its database, and a gateway restarted while a job runs."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import httpx

from tests.conftest import POSTGRES_ADMIN_URL
from tests.integration.gateway_vs_actors.mesh import (
    API_KEYS,
    Mesh,
    SseEvent,
    create_job,
    iter_sse,
    read_stream,
    updates,
    wait_terminal,
)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _take_database_away(name: str) -> None:
    await _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    await _admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")


async def _status_within(client: httpx.AsyncClient, path: str, status: int, within: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: object = None
    while loop.time() < deadline:
        try:
            response = await client.get(path)
            last = response.status_code
            if response.status_code == status:
                return
        except httpx.HTTPError as exc:
            last = exc
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} never answered {status} within {within} s (last: {last})")


async def test_without_its_database_the_gateway_is_unready_and_recovers_by_itself(
    mesh: Mesh,
) -> None:
    headers = {"Authorization": f"Bearer {API_KEYS[0]}"}
    call = {"name": "test_echo", "arguments": {"message": "during outage"}}
    async with httpx.AsyncClient(base_url=mesh.guarded.url, timeout=30, headers=headers) as gw:
        assert (await gw.get("/ready")).status_code == 200
        before = len((await gw.get("/jobs")).json()["jobs"])
        try:
            await _take_database_away(mesh.guarded_database)
            await _status_within(gw, "/ready", 503, within=15)
            refused = await gw.post("/tools/call", json=call)
            listing = await gw.get("/jobs")
            health = await gw.get("/health")
        finally:
            await _admin(f'ALTER DATABASE "{mesh.guarded_database}" ALLOW_CONNECTIONS true')
        await _status_within(gw, "/ready", 200, within=30)
        accepted = await gw.post("/tools/call", json=call)
        jobs = (await gw.get("/jobs")).json()["jobs"]

    assert refused.status_code == 503
    assert refused.json()["error"]
    assert listing.status_code == 503
    assert health.status_code == 200
    assert accepted.status_code == 200
    assert len(jobs) == before + 1
    assert jobs[0]["id"] == accepted.json()["structuredContent"]["job_id"]


async def test_a_gateway_restarted_mid_job_finishes_the_job_and_replays_its_stream(
    mesh: Mesh,
) -> None:
    async with httpx.AsyncClient(base_url=mesh.url, timeout=30) as client:
        job_id = await create_job(client, "test_progress", {"steps": 12})
        seen: list[SseEvent] = []

        async def follow() -> None:
            with contextlib.suppress(httpx.HTTPError):
                async with client.stream("GET", f"/jobs/{job_id}/stream") as response:
                    async for event in iter_sse(response):
                        seen.append(event)

        follower = asyncio.create_task(follow())
        await asyncio.sleep(1.2)
        await asyncio.to_thread(mesh.gateway.stop, 15.0)
        await asyncio.wait_for(follower, 5)
        mesh.gateway.start()
        await asyncio.to_thread(mesh.gateway.wait_ready, 60.0)

        job = await wait_terminal(client, job_id, within=40)
        replay = await read_stream(mesh.url, job_id, within=10)

    assert job["status"] == "Succeeded"
    assert job["result"] == {"steps": 12, "completed": True}
    before_restart = [(e.id, e.data) for e in seen[1:]]
    assert before_restart, "the stream showed nothing before the restart"
    assert [(e.id, e.data) for e in replay[1 : 1 + len(before_restart)]] == before_restart
    items = updates(replay)
    assert items[-1]["status"] == "Succeeded"
    assert items[-1]["result"] == {"steps": 12, "completed": True}


async def test_a_deadline_that_passes_while_the_gateway_is_down_fails_the_job_after_restart(
    mesh: Mesh,
) -> None:
    """test_unanswered's queue has no consumer: only the restarted gateway's deadline can end it."""
    headers = {"Authorization": f"Bearer {API_KEYS[0]}"}
    async with httpx.AsyncClient(base_url=mesh.guarded.url, timeout=30, headers=headers) as gw:
        job_id = await create_job(gw, "test_unanswered", {})
        await asyncio.to_thread(mesh.guarded.stop, 15.0)
        await asyncio.sleep(2.5)
        mesh.guarded.start()
        await asyncio.to_thread(mesh.guarded.wait_ready, 60.0)

        job = await wait_terminal(gw, job_id, within=10)

    assert job["status"] == "Failed"
    assert job["error"] == "job timed out after 2 s"
