"""MCP over Streamable HTTP with the official ``mcp`` client against a served gateway."""

from __future__ import annotations

import asyncio
import contextlib
import json
import warnings
from collections.abc import AsyncIterator

import httpx
import orjson
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning

from tests.integration.gateway.conftest import RunningGateway, serve_gateway


@contextlib.asynccontextmanager
async def mcp_session(gateway: RunningGateway, mode: str = "auto") -> AsyncIterator[Client]:
    """The official 2.x client; ``auto`` speaks 2026-07-28, ``legacy`` the initialize handshake."""
    async with Client(f"{gateway.url}/mcp", mode=mode) as client:
        yield client


async def _fake_actor(gateway: RunningGateway, fail: bool = False) -> None:
    """Consume step-a once and report like a sidecar and the crew would."""
    message = await gateway.sent("step-a")
    job_id = message["job_id"]
    for status in ("received", "processing", "completed"):
        await gateway.progress(job_id, 0, status, total=1)
        await asyncio.sleep(0.05)
    if fail:
        final = {"status": "failed", "error": "processing_error: bad value"}
    else:
        final = {"status": "succeeded", "result": message["payload"]["value"] * 2}
    response = await gateway.client.post(f"/jobs/{job_id}/final", json=final)
    assert response.status_code == 200


async def test_initialize_and_list_tools_show_the_tools_file(gateway: RunningGateway) -> None:
    async with mcp_session(gateway, mode="legacy") as session:
        with warnings.catch_warnings():  # ping is gone from 2026-07-28; handshake clients keep it
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await session.send_ping()
    async with mcp_session(gateway) as session:
        listed = await session.list_tools()
    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) >= {"test_pipeline", "test_echo", "test_wait"}
    assert tools["test_pipeline"].description == "Double then add five"
    assert tools["test_pipeline"].input_schema["properties"]["value"]["type"] == "integer"


async def test_tools_call_creates_the_job_like_rest(gateway: RunningGateway) -> None:
    async with mcp_session(gateway) as session:
        result = await session.call_tool("test_pipeline", {"value": 10})
    assert result.is_error is False
    job_id = result.structured_content["job_id"]
    assert result.content[0].text.startswith(f"Job created successfully with ID: {job_id}\n\n")
    message = await gateway.sent("step-a")
    assert message["job_id"] == job_id
    assert message["payload"] == {"value": 10, "mode": "fast"}


async def test_a_wait_tool_returns_the_result_with_progress_notifications(
    gateway: RunningGateway,
) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, total, message))

    actor = asyncio.create_task(_fake_actor(gateway))
    async with mcp_session(gateway) as session:
        result = await session.call_tool("test_wait", {"value": 21}, progress_callback=on_progress)
    await actor
    assert result.is_error is False
    assert json.loads(result.content[0].text) == 42
    assert result.structured_content == {"result": 42}
    assert [value for value, _, _ in progress] == [10, 50, 100]
    assert all(total == 100 for _, total, _ in progress)
    assert progress[0][2] == "received at 0"


async def test_a_wait_tool_reports_a_failed_job_as_an_error(gateway: RunningGateway) -> None:
    actor = asyncio.create_task(_fake_actor(gateway, fail=True))
    async with mcp_session(gateway) as session:
        result = await session.call_tool("test_wait", {"value": 1})
    await actor
    assert result.is_error is True
    assert "processing_error: bad value" in result.content[0].text


async def test_unknown_tools_and_bad_arguments_are_errors_that_create_no_job(
    gateway: RunningGateway,
) -> None:
    async with mcp_session(gateway) as session:
        unknown = await session.call_tool("no_such_tool", {})
        mistyped = await session.call_tool("test_pipeline", {"value": "ten"})
        missing = await session.call_tool("test_pipeline", {})
        undeclared = await session.call_tool("test_pipeline", {"value": 1, "extra": True})
    assert unknown.is_error is True
    assert "no_such_tool" in unknown.content[0].text
    assert mistyped.is_error is True
    assert "integer" in mistyped.content[0].text
    assert missing.is_error is True
    assert "value" in missing.content[0].text
    assert undeclared.is_error is True
    assert "extra" in undeclared.content[0].text
    broker_depth = await gateway.broker.depth("step-a")
    assert broker_depth == 0
    jobs = (await gateway.client.get("/jobs")).json()["jobs"]
    assert all(job["payload"] != {"value": 1, "extra": True} for job in jobs)


async def test_raw_json_rpc_tools_call_works_without_the_sdk(gateway: RunningGateway) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "test_echo", "arguments": {"message": "hi"}},
    }
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        response = await client.post("/mcp", json=body, headers=headers)
    assert response.status_code == 200
    data_lines = [
        line[len("data: ") :] for line in response.text.splitlines() if line.startswith("data: ")
    ]
    reply = orjson.loads(data_lines[-1])
    assert reply["id"] == 1
    assert reply["result"]["isError"] is False
    assert "job_id" in reply["result"]["structuredContent"]


async def test_a_wait_tool_whose_job_times_out_returns_the_timeout_error(sqlite_url: str) -> None:
    tools = "tools: [{name: stuck, route: [step-a], timeout: 1, wait: true}]"
    async with (
        serve_gateway(sqlite_url, tools_yaml=tools) as gateway,
        mcp_session(gateway) as session,
    ):
        result = await asyncio.wait_for(session.call_tool("stuck", {}), 15)
    assert result.is_error is True
    assert "job timed out after 1 s" in result.content[0].text
