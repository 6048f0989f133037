"""MCP over Streamable HTTP: the official client, raw JSON-RPC, and a ``wait: true`` tool."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from tests.integration.gateway_vs_actors.mesh import (
    Mesh,
    expected_call_text,
    wait_terminal,
)

MCP_ACCEPT = "application/json, text/event-stream"


async def _job_count(client: httpx.AsyncClient) -> int:
    return len((await client.get("/jobs", params={"limit": 500})).json()["jobs"])


async def test_official_client_lists_tools_with_their_json_schema(mesh: Mesh) -> None:
    async with Client(f"{mesh.url}/mcp") as session:
        capabilities = session.server_capabilities
        listed = await session.list_tools()

    assert capabilities.tools is not None
    by_name = {tool.name: tool for tool in listed.tools}
    assert "test_pipeline" in by_name
    assert by_name["test_pipeline"].description == "Double then add five"
    schema = by_name["test_pipeline"].input_schema
    assert schema["required"] == ["value"]
    assert schema["properties"]["value"]["type"] == "integer"
    assert schema["properties"]["mode"]["enum"] == ["fast", "slow"]


async def test_official_client_tool_call_creates_a_job_with_the_rest_text(
    mesh: Mesh, client: httpx.AsyncClient
) -> None:
    async with Client(f"{mesh.url}/mcp") as session:
        result = await session.call_tool("test_pipeline", {"value": 10})

    assert result.is_error is False
    assert result.structured_content is not None
    job_id = result.structured_content["job_id"]
    assert result.structured_content == {"job_id": job_id}
    assert [(c.type, getattr(c, "text", None)) for c in result.content] == [
        ("text", expected_call_text(job_id))
    ]
    job = await wait_terminal(client, job_id)
    assert job["status"] == "Succeeded"
    assert job["result"] == {"value": 25}


async def test_official_client_wait_tool_returns_the_result_with_progress_notifications(
    mesh: Mesh,
) -> None:
    notes: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        notes.append((progress, total, message))

    async with Client(f"{mesh.url}/mcp") as session:
        result = await session.call_tool(
            "test_pipeline_wait", {"value": 10}, progress_callback=on_progress
        )

    assert result.is_error is False
    assert result.structured_content == {"value": 25}
    assert json.loads(result.content[0].text) == {"value": 25}  # type: ignore[union-attr]
    progress = [p for p, _, _ in notes]
    assert progress, "no notifications/progress received"
    assert progress == sorted(set(progress))
    assert set(progress) <= {5, 25, 50, 55, 75, 100}
    assert {total for _, total, _ in notes} == {100}


async def test_official_client_unknown_tool_is_refused_naming_it_and_creates_no_job(
    mesh: Mesh, client: httpx.AsyncClient
) -> None:
    before = await _job_count(client)
    async with Client(f"{mesh.url}/mcp") as session:
        try:
            result = await session.call_tool("no_such_tool", {})
        except MCPError as exc:
            kind, text = f"json-rpc {exc.error.code}", exc.error.message
        else:
            kind = "error result" if result.is_error else "success"
            text = result.content[0].text  # type: ignore[union-attr]

    assert kind in {"json-rpc -32602", "error result"}
    assert "no_such_tool" in text
    assert await _job_count(client) == before


async def test_official_client_bad_arguments_give_an_error_result_and_no_job(
    mesh: Mesh, client: httpx.AsyncClient
) -> None:
    before = await _job_count(client)
    async with Client(f"{mesh.url}/mcp") as session:
        result = await session.call_tool("test_pipeline", {"value": "ten"})

    assert result.is_error is True
    assert "value" in result.content[0].text  # type: ignore[union-attr]
    assert await _job_count(client) == before


# ---------------------------------------------------------------------------------------------
# Raw JSON-RPC, as a client without the SDK would speak it
# ---------------------------------------------------------------------------------------------


def _rpc_result(response: httpx.Response, request_id: int) -> dict[str, Any]:
    """The JSON-RPC response with ``request_id`` from a JSON or an SSE body."""
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("application/json"):
        messages = [response.json()]
    else:
        messages = [
            json.loads(line[5:].strip())
            for line in response.text.splitlines()
            if line.startswith("data:") and line[5:].strip()
        ]
    for message in messages:
        if message.get("id") == request_id:
            assert message["jsonrpc"] == "2.0"
            return dict(message)
    raise AssertionError(f"no response with id {request_id} in {response.text!r}")


class RawMcp:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.session_id: str | None = None
        self.next_id = 0

    def headers(self) -> dict[str, str]:
        headers = {"Accept": MCP_ACCEPT, "Content-Type": "application/json"}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        return headers

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self.next_id += 1
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            body["params"] = params
        response = await self.client.post("/mcp", json=body, headers=self.headers())
        if method == "initialize":
            self.session_id = response.headers.get("mcp-session-id")
        return _rpc_result(response, self.next_id)

    async def notify(self, method: str) -> None:
        response = await self.client.post(
            "/mcp", json={"jsonrpc": "2.0", "method": method}, headers=self.headers()
        )
        assert response.status_code in (200, 202), response.text


@pytest.fixture
async def raw_mcp(client: httpx.AsyncClient) -> RawMcp:
    rpc = RawMcp(client)
    init = await rpc.request(
        "initialize",
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw-test-client", "version": "1.0"},
        },
    )
    assert "tools" in init["result"]["capabilities"]
    assert init["result"]["protocolVersion"]
    await rpc.notify("notifications/initialized")
    return rpc


async def test_raw_json_rpc_lists_tools(raw_mcp: RawMcp) -> None:
    listed = await raw_mcp.request("tools/list")

    names = {tool["name"] for tool in listed["result"]["tools"]}
    assert {"test_echo", "test_pipeline", "test_progress", "test_error", "test_timeout"} <= names


async def test_raw_json_rpc_tool_call_creates_a_job(
    raw_mcp: RawMcp, client: httpx.AsyncClient
) -> None:
    answer = await raw_mcp.request(
        "tools/call", {"name": "test_echo", "arguments": {"message": "raw"}}
    )

    result = answer["result"]
    job_id = result["structuredContent"]["job_id"]
    assert result["isError"] is False
    assert result["content"] == [{"type": "text", "text": expected_call_text(job_id)}]
    job = await wait_terminal(client, job_id)
    assert job["result"] == {"message": "raw"}


async def test_raw_json_rpc_ping_answers_an_empty_result(raw_mcp: RawMcp) -> None:
    assert (await raw_mcp.request("ping"))["result"] == {}


async def test_wait_tool_wraps_a_result_that_is_not_an_object(mesh: Mesh) -> None:
    async with Client(f"{mesh.url}/mcp") as session:
        result = await session.call_tool("test_echo_text_wait", {"message": "plain"})

    assert result.is_error is False
    assert result.structured_content == {"result": "plain"}
    assert json.loads(result.content[0].text) == "plain"  # type: ignore[union-attr]


async def test_wait_tool_for_a_failing_job_returns_an_error_result(mesh: Mesh) -> None:
    async with Client(f"{mesh.url}/mcp") as session:
        result = await session.call_tool("test_error_wait", {"reason": "wait and fail"})

    assert result.is_error is True
    text = result.content[0].text  # type: ignore[union-attr]
    assert "processing_error: Simulated failure: wait and fail" in text
