"""Cancelling a wait-mode MCP ``tools/call``: ``notifications/cancelled`` cancels the job.

The gateway serves MCP statelessly, so the notification is a POST of its own; a dropped
connection is not a cancel (docs/reference/gateway-api.md#mcp-cancellation).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
import orjson
from mcp import Client

from tests.integration.gateway.conftest import (
    RunningGateway,
    eventually,
    serve_gateway,
    waiting_call_rows,
)

HEADERS = {"Accept": "application/json, text/event-stream"}


def _call(request_id: Any, value: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "test_wait", "arguments": {"value": value}},
    }


def _cancelled(request_id: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": {"requestId": request_id, "reason": "the user pressed stop"},
    }


def _reply(response: httpx.Response) -> dict[str, Any]:
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    reply: dict[str, Any] = orjson.loads(lines[-1] if lines else response.text)
    return reply


async def _status_is(gateway: RunningGateway, job_id: str, status: str) -> bool:
    return (await gateway.job(job_id))["status"] == status


async def test_the_official_client_cancelling_a_call_cancels_its_job(
    gateway: RunningGateway,
) -> None:
    # The handshake-era wire POSTs notifications/cancelled when the caller gives up the call.
    async with Client(f"{gateway.url}/mcp", mode="legacy") as session:
        call = asyncio.create_task(session.call_tool("test_wait", {"value": 3}))
        job_id = (await gateway.sent("step-a"))["job_id"]
        await eventually(lambda: _status_is(gateway, job_id, "Running"))
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
        await eventually(lambda: _status_is(gateway, job_id, "Cancelled"))


async def test_raw_json_rpc_cancel_cancels_the_job_and_the_call_ends_unanswered(
    gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15, headers=HEADERS) as client:
        call = asyncio.create_task(client.post("/mcp", json=_call("call-7")))
        job_id = (await gateway.sent("step-a"))["job_id"]
        await eventually(lambda: waiting_call_rows(gateway.database_url, job_id))
        other = await client.post("/mcp", json=_cancelled("call-8"))  # no such call: nothing
        assert other.status_code == 202
        assert await _status_is(gateway, job_id, "Running")
        notified = await client.post("/mcp", json=_cancelled("call-7"))
        assert notified.status_code == 202
        assert (await gateway.job(job_id))["status"] == "Cancelled"
        reply = _reply(await asyncio.wait_for(call, 10))
    # No result for a request its client cancelled: the SDK's "Request cancelled" ends the stream.
    assert reply == {
        "jsonrpc": "2.0",
        "id": "call-7",
        "error": {"code": -32800, "message": "Request cancelled"},
    }
    assert await waiting_call_rows(gateway.database_url, job_id) == 0  # forgotten as it ended


async def test_a_call_whose_job_someone_else_cancelled_answers_the_cancelled_result(
    gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15, headers=HEADERS) as client:
        call = asyncio.create_task(client.post("/mcp", json=_call(11)))
        job_id = (await gateway.sent("step-a"))["job_id"]
        await eventually(lambda: _status_is(gateway, job_id, "Running"))
        assert (await gateway.client.post(f"/jobs/{job_id}/cancel")).status_code == 200
        reply = _reply(await asyncio.wait_for(call, 10))
    assert reply["id"] == 11
    assert reply["result"]["isError"] is True
    assert reply["result"]["structuredContent"] == {"job_id": job_id, "status": "Cancelled"}


async def test_a_cancel_from_another_credential_or_an_ambiguous_id_cancels_nothing(
    gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15, headers=HEADERS) as client:
        first = asyncio.create_task(client.post("/mcp", json=_call(1)))
        first_job = (await gateway.sent("step-a"))["job_id"]
        await eventually(lambda: waiting_call_rows(gateway.database_url, first_job))
        stranger = {"Authorization": "Bearer someone-else"}
        await client.post("/mcp", json=_cancelled(1), headers=stranger)
        await client.post("/mcp", json=_cancelled("1"))  # "1" is not 1
        assert await _status_is(gateway, first_job, "Running")
        # Two callers on one address both using id 1: which one meant it is unknowable.
        second = asyncio.create_task(client.post("/mcp", json=_call(1)))
        second_job = (await gateway.sent("step-a"))["job_id"]
        await eventually(lambda: waiting_call_rows(gateway.database_url, second_job))
        await client.post("/mcp", json=_cancelled(1))
        assert await _status_is(gateway, first_job, "Running")
        assert await _status_is(gateway, second_job, "Running")
        for call in (first, second):
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await call


async def test_a_dropped_connection_does_not_cancel_the_job(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15, headers=HEADERS) as client:
        call = asyncio.create_task(client.post("/mcp", json=_call(5)))
        job_id = (await gateway.sent("step-a"))["job_id"]
        await eventually(lambda: _status_is(gateway, job_id, "Running"))
        call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await call
    await asyncio.sleep(0.5)
    assert await _status_is(gateway, job_id, "Running")
    # The same happens with the official client on 2026-07-28, whose cancel closes the POST.
    async with Client(f"{gateway.url}/mcp") as session:
        modern = asyncio.create_task(session.call_tool("test_wait", {"value": 4}))
        modern_job = (await gateway.sent("step-a"))["job_id"]
        await eventually(lambda: _status_is(gateway, modern_job, "Running"))
        modern.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await modern
    await asyncio.sleep(0.5)
    assert await _status_is(gateway, modern_job, "Running")


async def test_a_cancel_on_another_replica_needs_the_callers_own_key(postgres_url: str) -> None:
    keys = ("key-a", "key-b")
    own = {**HEADERS, "Authorization": "Bearer key-a"}
    foreign = {**HEADERS, "Authorization": "Bearer key-b"}
    async with (
        serve_gateway(postgres_url, api_keys=keys) as holder,
        serve_gateway(postgres_url, api_keys=keys) as other,
        httpx.AsyncClient(timeout=15) as client,
    ):

        async def status() -> str:
            job = await client.get(f"{other.url}/jobs/{job_id}", headers=own)
            return str(job.json()["status"])

        call = asyncio.create_task(client.post(f"{holder.url}/mcp", json=_call(3), headers=own))
        job_id = (await holder.sent("step-a"))["job_id"]
        await eventually(lambda: waiting_call_rows(postgres_url, job_id))
        refused = await client.post(f"{other.url}/mcp", json=_cancelled(3), headers=foreign)
        assert refused.status_code == 202
        assert await status() == "Running"

        notified = await client.post(f"{other.url}/mcp", json=_cancelled(3), headers=own)
        assert notified.status_code == 202
        assert await status() == "Cancelled"
        reply = _reply(await asyncio.wait_for(call, 10))
    assert reply["error"] == {"code": -32800, "message": "Request cancelled"}
    assert await waiting_call_rows(postgres_url, job_id) == 0
