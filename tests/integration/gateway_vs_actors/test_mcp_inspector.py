"""The MCP Inspector's CLI (``@modelcontextprotocol/inspector --cli``, from tests/mcp_node) against
the mesh's gateway: it lists the tools with their schemas and calls one the actors answer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.integration.gateway_vs_actors.mesh import Mesh


async def _inspector(mcp_node: Path, url: str, *args: str) -> Any:
    """What the CLI prints for one method (it connects, asks, prints the result as JSON)."""
    process = await asyncio.create_subprocess_exec(
        "node",
        Path("node_modules", ".bin", "mcp-inspector"),
        "--cli",
        f"{url}/mcp",
        "--transport",
        "http",
        *args,
        cwd=mcp_node,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        output, errors = await asyncio.wait_for(process.communicate(), 120)
    except TimeoutError:
        process.kill()
        raise
    assert process.returncode == 0, (output + errors).decode()
    return json.loads(output)


async def test_the_inspector_cli_lists_the_tools_with_their_schemas(
    mcp_node: Path, mesh: Mesh
) -> None:
    listed = await _inspector(mcp_node, mesh.url, "--method", "tools/list")

    by_name = {tool["name"]: tool for tool in listed["tools"]}
    assert {"test_pipeline", "test_echo_text_wait", "get_job"} <= set(by_name)
    pipeline = by_name["test_pipeline"]
    assert pipeline["description"] == "Double then add five"
    assert pipeline["inputSchema"]["required"] == ["value"]
    assert pipeline["inputSchema"]["properties"]["value"]["type"] == "integer"
    assert pipeline["inputSchema"]["properties"]["mode"]["enum"] == ["fast", "slow"]
    assert by_name["test_echo_text_wait"]["inputSchema"]["properties"]["message"] == {
        "type": "string"
    }


async def test_the_inspector_cli_calls_a_tool_and_gets_the_actors_result(
    mcp_node: Path, mesh: Mesh
) -> None:
    result = await _inspector(
        mcp_node,
        mesh.url,
        "--method",
        "tools/call",
        "--tool-name",
        "test_echo_text_wait",
        "--tool-arg",
        "message=hello inspector",
    )

    assert result["isError"] is False
    assert result["content"] == [{"type": "text", "text": '"hello inspector"'}]
    assert result["structuredContent"] == {"result": "hello inspector"}
