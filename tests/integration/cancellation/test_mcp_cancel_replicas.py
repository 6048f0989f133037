"""An MCP client's ``notifications/cancelled`` reaching another gateway replica than the one
holding its wait-mode call (docs/reference/gateway-api.md#mcp-cancellation): two ``asya gateway``
processes on one PostgreSQL database, and a real actor whose handler is running the job."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.cancellation.mesh import CancelMesh, new_tag, wait_pid_gone
from tests.integration.gateway.conftest import eventually, waiting_call_rows

pytestmark = pytest.mark.parametrize("cancel_mesh", ["postgresql"], indirect=True)

ACCEPT = {"Accept": "application/json, text/event-stream"}
SESSION = {**ACCEPT, "Mcp-Session-Id": "session-a"}


def _cancelled(request_id: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": request_id, "reason": "the user pressed stop"},
    }


async def _job_of(client: httpx.AsyncClient, url: str, tag: str) -> dict[str, Any]:
    listed = (await client.get(f"{url}/jobs", params={"tool": "sleep_wait"})).json()["jobs"]
    job: dict[str, Any] = next(job for job in listed if job["payload"]["tag"] == tag)
    return job


async def test_a_cancel_posted_to_another_replica_stops_the_job_and_ends_the_call(
    cancel_mesh: CancelMesh,
) -> None:
    mesh = cancel_mesh
    holder, other = mesh.gateways[0], mesh.start_gateway()
    mesh.start_actor()  # follows the holder's cancellation stream
    tag = new_tag()
    call_body = {
        "jsonrpc": "2.0",
        "id": "call-1",
        "method": "tools/call",
        "params": {"name": "sleep_wait", "arguments": {"tag": tag, "seconds": 60}},
    }
    async with httpx.AsyncClient(timeout=30) as client:
        call = asyncio.create_task(
            client.post(f"{holder.url}/mcp", json=call_body, headers=SESSION)
        )
        worker = await asyncio.to_thread(mesh.wait_call, tag)
        job_id = (await _job_of(client, holder.url, tag))["id"]
        await eventually(lambda: waiting_call_rows(mesh.database_url, job_id))

        # None of these is the caller naming its call: each is acknowledged and cancels nothing.
        strangers = [
            (_cancelled("call-1"), ACCEPT),  # no session
            (_cancelled("call-1"), {**ACCEPT, "Mcp-Session-Id": "session-b"}),
            (_cancelled("call-1"), {**SESSION, "Authorization": "Bearer someone-else"}),
            (_cancelled(1), SESSION),
            (_cancelled(["call-1"]), SESSION),
            (_cancelled({"id": "call-1"}), SESSION),
            (_cancelled(None), SESSION),
            (_cancelled(1.5), SESSION),
            (_cancelled("call-1" * 100_000), SESSION),
            ({"jsonrpc": "2.0", "method": "notifications/cancelled"}, SESSION),
        ]
        for body, headers in strangers:
            response = await client.post(
                f"{other.url}/mcp",
                content=orjson.dumps(body),
                headers={**headers, "Content-Type": "application/json"},
            )
            assert response.status_code == 202, (body, response.text)
        job = await client.get(f"{other.url}/jobs/{job_id}")
        assert job.json()["status"] == "Running"
        assert mesh.calls(tag) == [worker]
        assert not call.done()

        response = await client.post(f"{other.url}/mcp", json=_cancelled("call-1"), headers=SESSION)
        assert response.status_code == 202
        assert (await client.get(f"{other.url}/jobs/{job_id}")).json()["status"] == "Cancelled"
        stopped_after = await wait_pid_gone(worker)
        reply = await asyncio.wait_for(call, 10)

    assert stopped_after < 2.0
    data = [line[6:] for line in reply.text.splitlines() if line.startswith("data: ")]
    assert orjson.loads(data[-1]) == {
        "jsonrpc": "2.0",
        "id": "call-1",
        "error": {"code": -32800, "message": "Request cancelled"},
    }
    assert await waiting_call_rows(mesh.database_url, job_id) == 0
    await asyncio.sleep(1.0)  # anything the actor would send on has been sent by now
    assert await mesh.depth(mesh.happy_end) == 0
    assert await mesh.depth(mesh.error_end) == 0
