"""Other MCP implementations against a served gateway, each in its own process.

- the official conformance suite (``@modelcontextprotocol/conformance``), server scenarios that
  apply to any server;
- ``@modelcontextprotocol/ext-tasks`` as a Tasks requester (``tests/mcp_node/tasks_requester.mjs``);
- the Python SDK 1.x client (2025-11-25, the handshake era) from a separate virtualenv.

The Node packages come from ``tests/mcp_node/package-lock.json`` (``npm ci``, run by
``make install`` or by the ``mcp_node`` fixture when they are missing). The SDK 1.x interpreter is
``ASYA_TEST_MCP1_PYTHON`` (default ``.venv/mcp1/bin/python``, which ``make install`` creates).
"""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MCP_NODE
from tests.integration.gateway.conftest import RunningGateway, serve_gateway

CONFORMANCE = Path("node_modules", ".bin", "conformance")
REPO = Path(__file__).resolve().parents[3]
MCP1_PYTHON = Path(
    os.environ.get("ASYA_TEST_MCP1_PYTHON", REPO / ".venv" / "mcp1" / "bin" / "python")
)
SCENARIOS = ("server-initialize", "ping", "tools-list", "dns-rebinding-protection")


@pytest.fixture
async def gateway(sqlite_url: str) -> AsyncIterator[RunningGateway]:
    """One store is enough here: these tests are about the wire, not the database."""
    async with serve_gateway(sqlite_url) as served:
        yield served


async def _run(*command: str | Path, limit: float = 120) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=MCP_NODE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        raise
    return process.returncode or 0, output.decode()


@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_conformance_server_scenario_passes(
    mcp_node: Path, gateway: RunningGateway, scenario: str
) -> None:
    code, output = await _run(
        "node", CONFORMANCE, "server", "--url", f"{gateway.url}/mcp", "--scenario", scenario
    )
    assert code == 0, output
    assert " 0 failed" in output, output


async def test_ext_tasks_requester_gets_the_job_as_a_task(
    mcp_node: Path, gateway: RunningGateway
) -> None:
    requester = asyncio.create_task(
        _run(
            "node",
            "tasks_requester.mjs",
            f"{gateway.url}/mcp",
            "test_pipeline",
            json.dumps({"value": 6}),
        )
    )
    message = await gateway.sent("step-a")
    job_id = message["job_id"]
    await gateway.progress(job_id, 0, "processing")
    final = {"status": "succeeded", "result": {"tripled": 18}}
    assert (await gateway.client.post(f"/jobs/{job_id}/final", json=final)).status_code == 200
    code, output = await requester
    assert code == 0, output
    reply: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    assert reply["kind"] == "task"
    assert reply["taskId"] == job_id
    assert reply["result"]["isError"] is False
    assert reply["result"]["structuredContent"] == {"tripled": 18}


MCP1_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def main(url):
        async with streamablehttp_client(url) as (read, write, _):
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                await session.send_ping()
                tools = await session.list_tools()
                result = await session.call_tool("test_pipeline", {"value": 3})
        print(json.dumps({
            "protocol": init.protocolVersion,
            "tools": [tool.name for tool in tools.tools],
            "result": result.model_dump(mode="json", by_alias=True),
        }))

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.fixture(scope="module")
def mcp1_python() -> Path:
    if not MCP1_PYTHON.exists():
        pytest.skip(f"no SDK 1.x interpreter at {MCP1_PYTHON} (make install)")
    return MCP1_PYTHON


async def test_python_sdk_1_client_still_works(mcp1_python: Path, gateway: RunningGateway) -> None:
    code, output = await _run(mcp1_python, "-c", MCP1_SCRIPT, f"{gateway.url}/mcp", limit=60)
    assert code == 0, output
    reply: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    assert reply["protocol"] == "2025-11-25"
    assert {"test_pipeline", "get_job"} <= set(reply["tools"])
    result = reply["result"]
    assert result["isError"] is False
    job_id = result["structuredContent"]["job_id"]
    assert "resultType" not in result or result["resultType"] == "complete"
    message = await gateway.sent("step-a")
    assert message["job_id"] == job_id
