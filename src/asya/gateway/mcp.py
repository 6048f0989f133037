"""The MCP face of the gateway (official ``mcp`` SDK 2.x, Streamable HTTP at ``/mcp``).

The SDK serves 2026-07-28 and, through the ``initialize`` handshake, the older revisions.
``tools/list`` shows the tools file as JSON Schemas plus ``get_job``; ``tools/call`` creates a
job exactly like ``POST /tools/call``. A client that declared the Tasks extension gets a task
handle instead (:mod:`.mcp_tasks`). A tool with ``wait: true`` follows its job and answers with
the result, sending ``notifications/progress`` whenever the percent rises (when the client asked
for progress with a ``progressToken``); a failed job answers ``isError`` with its ``error`` and
``error_details`` in ``structuredContent``. A client that abandons a wait-mode call with
``notifications/cancelled``, on any replica, cancels its job (:mod:`.mcp_calls`), and the call
then ends as a cancelled request does; a dropped connection cancels nothing
(docs/reference/gateway-api.md#mcp-cancellation). Schema errors come back as ``isError``
results so an agent can read and correct them; neither they nor an unknown tool create a job.
"""

from __future__ import annotations

import logging
from typing import Any

import mcp_types as types
import orjson
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.streamable_http import REQUEST_CANCELLED
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from asya import __version__
from asya.errors import AsyaError, JobNotFound
from asya.gateway.http import Auth, error, unauthorized
from asya.gateway.mcp_calls import WaitingCalls, call_key, cancelled_request_id
from asya.gateway.mcp_guard import body_problem, parse_error, read_body, replay
from asya.gateway.mcp_tasks import (
    TASKS_EXTENSION,
    TaskIdParams,
    cancel_task,
    client_accepts_tasks,
    create_task_result,
    detailed_task,
    load_job,
)
from asya.gateway.models import CANCELLED, SUCCEEDED, Job, JobUpdate
from asya.gateway.service import JobService, PublishFailed, created_text
from asya.gateway.store import StoreUnavailable
from asya.gateway.tools import ArgumentsError, Tool, ToolRegistry

logger = logging.getLogger(__name__)

CANCELLED_MARK = b"notifications/cancelled"  # a cheap test before a POST body is parsed again
WAIT_GRACE = 5.0  # beyond the tool's timeout, so the sweeper's "timed out" wins the race
GET_JOB = "get_job"
GET_JOB_TOOL = types.Tool(
    name=GET_JOB,
    description="A job's result once it has finished, or its status and progress until then",
    input_schema={
        "type": "object",
        "properties": {"job_id": {"type": "string", "description": "the id a tool call returned"}},
        "required": ["job_id"],
        "additionalProperties": False,
    },
)


def _text(text: str) -> list[types.ContentBlock]:
    return [types.TextContent(type="text", text=text)]


def _error_result(text: str, structured: dict[str, Any] | None = None) -> types.CallToolResult:
    return types.CallToolResult(content=_text(text), structured_content=structured, is_error=True)


def job_result(job: Job) -> types.CallToolResult:
    """A finished job as a tool result: result JSON + structuredContent, or an error."""
    if job.status == SUCCEEDED and job.error:  # its result is gone (results.py)
        return _error_result(
            f"Job {job.id} succeeded, but its result is unavailable: {job.error}",
            {"job_id": job.id, "error": job.error, "error_details": job.error_details},
        )
    if job.status == SUCCEEDED:
        result = job.result
        structured = result if isinstance(result, dict) else {"result": result}
        return types.CallToolResult(
            content=_text(orjson.dumps(result).decode()),
            structured_content=structured,
            is_error=False,
        )
    if job.status == CANCELLED:
        return _error_result(
            f"Job {job.id} was cancelled", {"job_id": job.id, "status": job.status}
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


async def finished_result(service: JobService, job: Job) -> types.CallToolResult:
    """:func:`job_result` of the job as clients see it (a result by reference read back)."""
    try:
        return job_result(await service.shown(job))
    except StoreUnavailable as exc:
        return _error_result(str(exc), {"job_id": job.id})


def build_server(service: JobService, tools: ToolRegistry, calls: WaitingCalls) -> Server[Any]:
    """The MCP server: the tools file's tools, ``get_job`` and the Tasks extension.

    Wait-mode calls are kept in ``calls`` while they wait, for ``notifications/cancelled``: a
    call its client cancelled is not answered with a result but, as the SDK ends a cancelled
    request on this transport, with the JSON-RPC error -32800.
    """

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        listed = [
            types.Tool(name=tool.name, description=tool.description, input_schema=tool.input_schema)
            for tool in tools
        ]
        if tools.get(GET_JOB) is None:
            listed.append(GET_JOB_TOOL)
        return types.ListToolsResult(tools=listed)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | dict[str, Any]:
        arguments = params.arguments or {}
        tool = tools.get(params.name)
        if tool is None and params.name == GET_JOB:
            return await get_job(service, arguments)
        if tool is None:
            return _error_result(f"Unknown tool: '{params.name}'")
        try:
            job = await service.create(tool, arguments)
        except ArgumentsError as exc:
            return _error_result(str(exc))
        except PublishFailed as exc:
            return _error_result(exc.error, {"job_id": exc.job_id})
        except StoreUnavailable as exc:
            return _error_result(str(exc))
        if tool.task and client_accepts_tasks(ctx.protocol_version, ctx.params):
            return create_task_result(job)
        if not tool.wait:
            return types.CallToolResult(
                content=_text(created_text(job.id)),
                structured_content={"job_id": job.id},
                is_error=False,
            )
        key = _call_key(ctx)
        if key is None:
            return await finished_result(service, await _wait(ctx, service, tool, job))
        async with calls.track(key, job.id) as call:
            finished = await _wait(ctx, service, tool, job)
        if call.abandoned and finished.status == CANCELLED:
            raise MCPError(REQUEST_CANCELLED, "Request cancelled")
        return await finished_result(service, finished)

    async def get_task(ctx: ServerRequestContext[Any], params: TaskIdParams) -> dict[str, Any]:
        job = await load_job(service, params.task_id)
        result = _wire(await finished_result(service, job)) if job.terminal else None
        return detailed_task(job, result)

    async def cancel(ctx: ServerRequestContext[Any], params: TaskIdParams) -> dict[str, Any]:
        await cancel_task(service, params.task_id)
        return {}

    server: Server[Any] = Server("asya-gateway", version=__version__, on_list_tools=list_tools)
    # Registered directly: the answer is a CallToolResult or, for a task, a CreateTaskResult.
    server.add_request_handler("tools/call", types.CallToolRequestParams, call_tool)
    server.add_request_handler("tasks/get", TaskIdParams, get_task)
    server.add_request_handler("tasks/cancel", TaskIdParams, cancel)
    server.extensions[TASKS_EXTENSION] = {}
    return server


def _call_key(ctx: ServerRequestContext[Any]) -> str | None:
    """How a ``notifications/cancelled`` POST will name this request (None off HTTP)."""
    request = ctx.request
    headers = getattr(request, "headers", None)
    if ctx.request_id is None or not isinstance(headers, Headers):
        return None
    client = getattr(request, "client", None)
    return call_key(headers, client.host if client else None, ctx.request_id)


def _wire(result: types.CallToolResult) -> dict[str, Any]:
    """A 2026-07-28 CallToolResult (``resultType: "complete"`` included, as requesters check)."""
    return result.model_dump(by_alias=True, exclude_none=True, mode="json")


async def get_job(service: JobService, arguments: dict[str, Any]) -> types.CallToolResult:
    """The built-in ``get_job`` tool: a finished job's result, or where a running one stands."""
    job_id = arguments.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        return _error_result("get_job needs a 'job_id' (the id a tool call answered with)")
    try:
        job = await service.get(job_id)
    except JobNotFound:
        return _error_result(f"Job {job_id} not found", {"job_id": job_id})
    except StoreUnavailable as exc:
        return _error_result(str(exc))
    if job.terminal:
        return await finished_result(service, job)
    state = {
        "job_id": job.id,
        "status": job.status,
        "progress_percent": job.progress_percent,
        "message": job.message,
    }
    text = f"Job {job.id} is {job.status} ({job.progress_percent:g}%); ask again later"
    return types.CallToolResult(content=_text(text), structured_content=state, is_error=False)


async def _wait(ctx: ServerRequestContext[Any], service: JobService, tool: Tool, job: Job) -> Job:
    token = ctx.meta.get("progress_token") if ctx.meta is not None else None
    best = 0.0

    async def on_update(update: JobUpdate) -> None:
        nonlocal best
        percent = update.progress_percent
        if token is None or not tool.progress or percent is None or percent <= best:
            return
        best = percent
        try:
            await ctx.session.send_progress_notification(
                token,
                percent,
                total=100,
                message=update.message,
                related_request_id=str(ctx.request_id),
            )
        except Exception:  # the client may be gone; the job goes on regardless
            logger.debug("could not send progress for job %s", job.id, exc_info=True)

    timeout = None if tool.timeout is None else tool.timeout + WAIT_GRACE
    return await service.wait(job.id, timeout, on_update)


class MCPEndpoint:
    """ASGI endpoint for ``/mcp``: API-key check, cancels, then the SDK's session manager.

    ``notifications/cancelled`` is acted on here, before the SDK acknowledges it: on the
    stateless transport the SDK serves each POST on its own and cannot tie it to the call.
    """

    def __init__(
        self,
        manager: StreamableHTTPSessionManager,
        auth: Auth,
        service: JobService,
        calls: WaitingCalls,
    ) -> None:
        self.manager = manager
        self.auth = auth
        self.service = service
        self.calls = calls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.auth.required("client") and not self.auth.client_ok(Headers(scope=scope)):
            await unauthorized()(scope, receive, send)
            return
        if scope.get("method") == "GET":
            # Stateless: nothing is ever pushed outside a request, so no standalone SSE stream
            # (the SDK 2.x would open one and keep it open forever).
            response = error(405, "method GET not allowed: /mcp offers no standalone stream")
            response.headers["Allow"] = "POST"
            await response(scope, receive, send)
            return
        if scope.get("method") == "POST":
            body = await read_body(receive)
            problem = body_problem(body)
            if problem is not None:
                await parse_error(scope, receive, send, problem)
                return
            if CANCELLED_MARK in body:
                await self._cancel_notified(scope, body)
            receive = replay(body, receive)
        await self.manager.handle_request(scope, receive, send)

    async def _cancel_notified(self, scope: Scope, body: bytes) -> None:
        """Cancel the job of the wait-mode call a ``notifications/cancelled`` abandons."""
        request_id = cancelled_request_id(orjson.loads(body))
        if request_id is None:
            return
        client = scope.get("client")
        key = call_key(Headers(scope=scope), client[0] if client else None, request_id)
        try:
            job_id = await self.calls.claim(key)
            if job_id is None:
                logger.info("notifications/cancelled for %.80r: no such waiting call", request_id)
                return
            await self.service.cancel(job_id)
        except (AsyaError, StoreUnavailable) as exc:  # already ended, or the store is away
            logger.info("notifications/cancelled for %.80r: %s", request_id, exc)
