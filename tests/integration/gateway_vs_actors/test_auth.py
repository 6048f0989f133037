"""API keys for clients (the guarded replica) and the actor token for actor endpoints."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.gateway_vs_actors.mesh import (
    ACTOR_TOKEN,
    API_KEYS,
    Mesh,
    create_job,
    wait_terminal,
)


@pytest.fixture
async def guarded(mesh: Mesh) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=mesh.guarded.url, timeout=30)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_client_endpoints_refuse_a_missing_or_wrong_api_key(
    guarded: httpx.AsyncClient,
) -> None:
    async with guarded:
        call = {"name": "test_echo", "arguments": {"message": "hi"}}
        answers = [
            await guarded.get("/tools"),
            await guarded.get("/jobs"),
            await guarded.post("/tools/call", json=call),
            await guarded.post("/tools/call", json=call, headers=bearer("wrong")),
            await guarded.get("/jobs", headers={"Authorization": API_KEYS[0]}),
            await guarded.get("/jobs/00000000-0000-4000-8000-000000000000/stream"),
            await guarded.post(
                "/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={"Accept": "application/json, text/event-stream"},
            ),
        ]
        jobs = await guarded.get("/jobs", headers=bearer(API_KEYS[1]))

    assert [r.status_code for r in answers] == [401] * 7
    assert all(r.json()["error"] for r in answers[:6])
    assert jobs.status_code == 200
    assert jobs.json() == {"jobs": [], "next_cursor": None}


async def test_any_configured_api_key_is_accepted(guarded: httpx.AsyncClient) -> None:
    async with guarded:
        answers = [await guarded.get("/tools", headers=bearer(key)) for key in API_KEYS]

    assert [r.status_code for r in answers] == [200, 200]


async def test_health_ready_and_metrics_need_no_key(guarded: httpx.AsyncClient) -> None:
    async with guarded:
        answers = [await guarded.get(path) for path in ("/health", "/ready", "/metrics")]

    assert [r.status_code for r in answers] == [200, 200, 200]


async def test_actor_endpoints_refuse_a_missing_or_wrong_actor_token(
    client: httpx.AsyncClient,
) -> None:
    job_id = await create_job(client, "test_echo", {"message": "token"})
    done = await wait_terminal(client, job_id)
    progress = {
        "step": "x",
        "step_index": 0,
        "total_steps": 1,
        "status": "received",
        "actor_name": "x",
        "message": "m",
    }
    heartbeat = {"actor_name": "x", "status": "processing", "message": "m"}

    answers = [
        await client.post(f"/jobs/{job_id}/progress", json=progress),
        await client.post(f"/jobs/{job_id}/heartbeat", json=heartbeat),
        await client.post(f"/jobs/{job_id}/final", json={"status": "failed", "error": "x"}),
        await client.post(
            f"/jobs/{job_id}/final",
            json={"status": "failed", "error": "x"},
            headers=bearer("not-the-token"),
        ),
    ]

    assert [r.status_code for r in answers] == [401] * 4
    assert (await client.get(f"/jobs/{job_id}")).json() == done


async def test_active_accepts_an_api_key_or_the_actor_token(guarded: httpx.AsyncClient) -> None:
    ghost = "/jobs/00000000-0000-4000-8000-000000000000/active"
    async with guarded:
        answers = [
            await guarded.get(ghost),
            await guarded.get(ghost, headers=bearer(API_KEYS[0])),
            await guarded.get(ghost, headers=bearer(ACTOR_TOKEN)),
        ]

    assert [r.status_code for r in answers] == [401, 404, 404]
