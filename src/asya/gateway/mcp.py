"""The MCP face of the gateway (official ``mcp`` SDK, Streamable HTTP at ``/mcp``).

``tools/list`` shows the tools file as JSON Schemas; ``tools/call`` creates a job exactly like
``POST /tools/call``. A tool with ``wait: true`` follows its job instead and answers with the
result, sending ``notifications/progress`` whenever the percent rises (when the client asked
for progress with a ``progressToken``); a failed job answers ``isError`` with its ``error`` and
``error_details`` in ``structuredContent``. Schema errors come back as ``isError`` results so an
agent can read and correct them; neither they nor an unknown tool create a job.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from asya import __version__
from asya.gateway.http import Auth, unauthorized
from asya.gateway.mcp_guard import body_problem, parse_error, read_body, replay
from asya.gateway.models import SUCCEEDED, Job, JobUpdate
from asya.gateway.service import JobService, PublishFailed, created_text
from asya.gateway.store import StoreUnavailable
from asya.gateway.tools import ArgumentsError, Tool, ToolRegistry

logger = logging.getLogger(__name__)

WAIT_GRACE = 5.0  # beyond the tool's timeout, so the sweeper's "timed out" wins the race


def _text(text: str) -> list[types.ContentBlock]:
    return [types.TextContent(type="text", text=text)]


def _error_result(text: str, structured: dict[str, Any] | None = None) -> types.CallToolResult:
    return types.CallToolResult(content=_text(text), structuredContent=structured, isError=True)


def job_result(job: Job) -> types.CallToolResult:
    """A finished job as a tool result: result JSON + structuredContent, or an error."""
    if job.status == SUCCEEDED:
        result = job.result
        structured = result if isinstance(result, dict) else {"result": result}
        return types.CallToolResult(
            content=_text(orjson.dumps(result).decode()),
            structuredContent=structured,
            isError=False,
        )
    if job.terminal:
        return _error_result(
            f"Job {job.id} failed: {job.error}",
            {"job_id": job.id, "error": job.error, "error_details": job.error_details},
        )
    return _error_result(
        f"Job {job.id} did not finish in time (status {job.status}); "
        f"follow it at GET /jobs/{job.id}",
        {"job_id": job.id},
    )


def build_server(service: JobService, tools: ToolRegistry) -> Server[Any, Any]:
    server: Server[Any, Any] = Server("asya-gateway", version=__version__)

    @server.list_tools()  # type: ignore[no-untyped-call, untyped-decorator]
    async def list_tools() -> list[types.Tool]:
        return [
            types.Tool(name=tool.name, description=tool.description, inputSchema=tool.input_schema)
            for tool in tools
        ]

    @server.call_tool(validate_input=False)  # type: ignore[untyped-decorator]
    async def call_tool(name: str, arguments: dict[str, Any]) -> types.CallToolResult:
        tool = tools.get(name)
        if tool is None:
            raise ValueError(f"Unknown tool: '{name}'")
        try:
            job = await service.create(tool, arguments or {})
        except ArgumentsError as exc:
            return _error_result(str(exc))
        except PublishFailed as exc:
            return _error_result(exc.error, {"job_id": exc.job_id})
        except StoreUnavailable as exc:
            return _error_result(str(exc))
        if not tool.wait:
            return types.CallToolResult(
                content=_text(created_text(job.id)),
                structuredContent={"job_id": job.id},
                isError=False,
            )
        return await _wait(server, service, tool, job)

    return server


async def _wait(
    server: Server[Any, Any], service: JobService, tool: Tool, job: Job
) -> types.CallToolResult:
    context = server.request_context
    token = context.meta.progressToken if context.meta is not None else None
    best = 0.0

    async def on_update(update: JobUpdate) -> None:
        nonlocal best
        percent = update.progress_percent
        if token is None or not tool.progress or percent is None or percent <= best:
            return
        best = percent
        try:
            await context.session.send_progress_notification(
                token,
                percent,
                total=100,
                message=update.message,
                related_request_id=str(context.request_id),
            )
        except Exception:  # the client may be gone; the job goes on regardless
            logger.debug("could not send progress for job %s", job.id, exc_info=True)

    timeout = None if tool.timeout is None else tool.timeout + WAIT_GRACE
    finished = await service.wait(job.id, timeout, on_update)
    return job_result(finished)


class MCPEndpoint:
    """ASGI endpoint for ``/mcp``: API-key check, then the SDK's session manager."""

    def __init__(self, manager: StreamableHTTPSessionManager, auth: Auth) -> None:
        self.manager = manager
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.auth.required("client") and not self.auth.client_ok(Headers(scope=scope)):
            await unauthorized()(scope, receive, send)
            return
        if scope.get("method") == "POST":
            body = await read_body(receive)
            problem = body_problem(body)
            if problem is not None:
                await parse_error(scope, receive, send, problem)
                return
            receive = replay(body, receive)
        await self.manager.handle_request(scope, receive, send)
