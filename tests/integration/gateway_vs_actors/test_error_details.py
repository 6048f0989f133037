"""A handler's bug (``payload["missing_key"]``) through the real mesh: its cause — exception type,
traceback, step — reaches REST, the SSE final update, MCP and ``asya call``
(docs/reference/jobs.md#error-details)."""

from __future__ import annotations

import asyncio
import inspect
import subprocess
from typing import Any

import httpx
from mcp import Client

from tests.helpers import asya_command, child_env
from tests.integration.gateway_vs_actors import handlers
from tests.integration.gateway_vs_actors.mesh import (
    Mesh,
    create_job,
    read_stream,
    updates,
    wait_terminal,
)

SOURCE = 'return {"value": payload["missing_key"]}'
LINE = next(
    number
    for number, text in enumerate(
        inspect.getsourcelines(handlers.error)[0], handlers.error.__code__.co_firstlineno
    )
    if SOURCE in text
)
HANDLERS_FILE = handlers.__file__


def _assert_key_error(details: dict[str, Any], mesh: Mesh) -> None:
    assert details["code"] == "processing_error"
    assert details["type"] == "KeyError"
    assert details["message"] == "'missing_key'"
    assert details["failed_step"] == mesh.queue("error")
    assert details["attempts"] == 1
    assert details["severity"] == "fatal"
    assert f'File "{HANDLERS_FILE}", line {LINE}, in error' in details["traceback"]
    assert SOURCE in details["traceback"]
    assert details["traceback"].rstrip().endswith("KeyError: 'missing_key'")


async def test_rest_and_the_sse_final_update_show_the_key_error_its_traceback_and_step(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    job_id = await create_job(client, "test_error", {"reason": "missing_key"})

    job = await wait_terminal(client, job_id)
    final = updates(await read_stream(mesh.url, job_id, within=10))[-1]

    assert job["status"] == "Failed"
    assert job["error"] == "processing_error: 'missing_key'"
    _assert_key_error(job["error_details"], mesh)
    assert final["status"] == "Failed"
    assert final["error_details"] == job["error_details"]


async def test_an_mcp_wait_tool_answers_is_error_with_the_details_in_structured_content(
    mesh: Mesh,
) -> None:
    async with Client(f"{mesh.url}/mcp") as session:
        result = await session.call_tool("test_error_wait", {"reason": "missing_key"})

    assert result.is_error is True
    text = result.content[0].text  # type: ignore[union-attr]
    assert "failed: processing_error: 'missing_key'" in text
    structured = result.structured_content
    assert structured is not None
    assert structured["error"] == "processing_error: 'missing_key'"
    assert structured["job_id"] in text
    _assert_key_error(structured["error_details"], mesh)


def _asya_call(mesh: Mesh, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        asya_command("call", "test_error", "reason=missing_key", "--gateway", mesh.url, *flags),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_asya_call_prints_the_step_the_exception_and_the_handlers_line(mesh: Mesh) -> None:
    plain, verbose = await asyncio.gather(
        asyncio.to_thread(_asya_call, mesh), asyncio.to_thread(_asya_call, mesh, "--traceback")
    )

    assert plain.returncode == 1, plain.stderr
    assert plain.stdout == ""
    lines = plain.stderr.splitlines()
    headline = f"Failed at step '{mesh.queue('error')}': KeyError: 'missing_key'"
    at = next(i for i, line in enumerate(lines) if line.endswith(headline))
    assert lines[at + 1] == f"  at {HANDLERS_FILE}:{LINE}, in error"
    assert lines[at + 2] == f"    {SOURCE}"
    assert "Traceback (most recent call last):" not in plain.stderr
    assert verbose.returncode == 1, verbose.stderr
    assert headline in verbose.stderr
    assert "  Traceback (most recent call last):" in verbose.stderr
    assert f'  File "{HANDLERS_FILE}", line {LINE}, in error' in verbose.stderr
    assert "  KeyError: 'missing_key'" in verbose.stderr
