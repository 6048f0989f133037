"""MCP Tasks (``io.modelcontextprotocol/tasks``): a job is a task; ``get_job``; Host/Origin checks.

Spoken three ways: the official Python client 2.x with a small requester extension, raw JSON-RPC
at 2026-07-28, and raw JSON-RPC at 2025-11-25 (no tasks there).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import httpx
import orjson
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp_types import CallToolResult, Request, RequestParams, Result

from tests.integration.gateway.conftest import RunningGateway, serve_gateway

TASKS = "io.modelcontextprotocol/tasks"
MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"


# -- the official client, with a requester for the extension ------------------------------------


class CreateTaskResult(Result):
    result_type: Literal["task"] = "task"
    task_id: str
    status: str
    poll_interval_ms: int | None = None


class TaskIdParams(RequestParams):
    task_id: str


class GetTaskRequest(Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskIdParams
    name_param = "taskId"


class TaskState(Result):
    task_id: str
    status: str
    status_message: str | None = None
    result: dict[str, Any] | None = None


class TasksRequester(ClientExtension):
    """Declares the extension; resolves a task handle by polling ``tasks/get``."""

    identifier = TASKS

    def __init__(self) -> None:
        self.handles: list[CreateTaskResult] = []
        self.polled: list[str] = []

    def claims(self) -> Sequence[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=CreateTaskResult, resolve=self._resolve)]

    async def _resolve(self, handle: CreateTaskResult, ctx: ClaimContext) -> CallToolResult:
        self.handles.append(handle)
        request = GetTaskRequest(params=TaskIdParams(task_id=handle.task_id))
        async with asyncio.timeout(20):
            while True:
                state = await ctx.session.send_request(request, TaskState)
                self.polled.append(state.status)
                if state.status == "completed" and state.result is not None:
                    return CallToolResult.model_validate(state.result)
                await asyncio.sleep(0.1)


async def _finish(gateway: RunningGateway, fail: bool = False) -> str:
    """Act as the actors for the next step-a message; return its job id."""
    message = await gateway.sent("step-a")
    job_id: str = message["job_id"]
    await gateway.progress(job_id, 0, "processing")
    if fail:
        final: dict[str, Any] = {"status": "failed", "error": "processing_error: bad value"}
    else:
        final = {"status": "succeeded", "result": {"doubled": message["payload"]["value"] * 2}}
    response = await gateway.client.post(f"/jobs/{job_id}/final", json=final)
    assert response.status_code == 200, response.text
    return job_id


async def test_python_client_with_the_extension_gets_a_task_whose_id_is_the_job(
    gateway: RunningGateway,
) -> None:
    requester = TasksRequester()
    async with Client(f"{gateway.url}/mcp", extensions=[requester]) as client:
        call = asyncio.create_task(client.call_tool("test_pipeline", {"value": 4}))
        job_id = await _finish(gateway)
        result = await asyncio.wait_for(call, 30)

    assert [handle.task_id for handle in requester.handles] == [job_id]
    assert requester.handles[0].status == "working"
    assert requester.polled[-1] == "completed"
    assert result.is_error is False
    assert result.structured_content == {"doubled": 8}


async def test_a_client_without_the_extension_never_gets_a_task(gateway: RunningGateway) -> None:
    async with Client(f"{gateway.url}/mcp") as client:
        result = await client.call_tool("test_pipeline", {"value": 4})
    assert result.is_error is False
    assert set(result.structured_content) == {"job_id"}


# -- raw JSON-RPC -------------------------------------------------------------------------------


def _meta(tasks: bool = True) -> dict[str, Any]:
    capabilities: dict[str, Any] = {"extensions": {TASKS: {}}} if tasks else {}
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": capabilities,
    }


async def _rpc(
    gateway: RunningGateway, method: str, params: dict[str, Any], name: str | None = None
) -> dict[str, Any]:
    headers = {"Accept": ACCEPT, "MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if name is not None:
        headers["Mcp-Name"] = name
    body = {"jsonrpc": "2.0", "id": uuid.uuid4().hex, "method": method, "params": params}
    response = await gateway.client.post("/mcp", json=body, headers=headers)
    reply: dict[str, Any] = orjson.loads(response.text)
    if "error" not in reply:  # an error may come with a 4xx status, by its code
        assert response.status_code == 200, response.text
    return reply


async def _call(gateway: RunningGateway, tool: str, tasks: bool = True, **args: Any) -> Any:
    params = {"name": tool, "arguments": args, "_meta": _meta(tasks)}
    return (await _rpc(gateway, "tools/call", params, name=tool))["result"]


async def _task(gateway: RunningGateway, method: str, task_id: str) -> dict[str, Any]:
    return await _rpc(gateway, method, {"taskId": task_id, "_meta": _meta()}, name=task_id)


async def test_raw_task_lifecycle_working_then_completed_with_the_result(
    gateway: RunningGateway,
) -> None:
    handle = await _call(gateway, "test_pipeline", value=5)
    assert handle["resultType"] == "task"
    assert handle["status"] == "working"
    assert handle["pollIntervalMs"] > 0
    assert "ttlMs" in handle
    job_id = handle["taskId"]
    assert (await gateway.job(job_id))["tool"] == "test_pipeline"

    assert await _finish(gateway) == job_id
    done = (await _task(gateway, "tasks/get", job_id))["result"]
    assert done["status"] == "completed"
    assert done["resultType"] == "complete"
    assert done["result"]["isError"] is False
    assert done["result"]["structuredContent"] == {"doubled": 10}


async def test_raw_task_shows_progress_while_working(gateway: RunningGateway) -> None:
    job_id = (await _call(gateway, "test_pipeline", value=5))["taskId"]
    await gateway.sent("step-a")
    await gateway.progress(job_id, 0, "completed")
    working = (await _task(gateway, "tasks/get", job_id))["result"]
    assert working["status"] == "working"
    assert "50%" in working["statusMessage"]
    assert "result" not in working


async def test_a_failed_job_is_a_completed_task_with_an_error_result_and_details(
    gateway: RunningGateway,
) -> None:
    job_id = (await _call(gateway, "test_pipeline", value=5))["taskId"]
    await _finish(gateway, fail=True)
    done = (await _task(gateway, "tasks/get", job_id))["result"]
    assert done["status"] == "completed"
    assert done["result"]["isError"] is True
    structured = done["result"]["structuredContent"]
    assert structured["job_id"] == job_id
    assert structured["error"] == "processing_error: bad value"
    assert "error_details" in structured


async def test_wait_tools_and_task_false_tools_answer_as_before(sqlite_url: str) -> None:
    tools = """
tools:
  - {name: direct, route: [step-a], task: false}
  - {name: waits, route: [step-a], timeout: 1, wait: true}
  - {name: waits_as_task, route: [step-a], wait: true, task: true}
"""
    async with serve_gateway(sqlite_url, tools_yaml=tools) as gateway:
        direct = await _call(gateway, "direct")
        waits = await _call(gateway, "waits")
        as_task = await _call(gateway, "waits_as_task")
    assert set(direct["structuredContent"]) == {"job_id"}
    assert waits["isError"] is True  # followed its job until the timeout, no task
    assert as_task["resultType"] == "task"


async def test_raw_request_without_the_capability_or_at_2025_11_25_gets_no_task(
    gateway: RunningGateway,
) -> None:
    undeclared = await _call(gateway, "test_pipeline", tasks=False, value=1)
    assert "resultType" not in undeclared or undeclared["resultType"] == "complete"
    assert "job_id" in undeclared["structuredContent"]

    headers = {"Accept": ACCEPT}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {"extensions": {TASKS: {}}},
            "clientInfo": {"name": "old", "version": "1"},
        },
    }
    reply = await gateway.client.post("/mcp", json=init, headers=headers)
    assert _sse_or_json(reply)["result"]["protocolVersion"] == "2025-11-25"
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {
            "name": "test_pipeline",
            "arguments": {"value": 1},
            "_meta": {"io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS: {}}}},
        },
    }
    headers["MCP-Protocol-Version"] = "2025-11-25"
    result = _sse_or_json(await gateway.client.post("/mcp", json=call, headers=headers))["result"]
    assert "job_id" in result["structuredContent"]
    assert "taskId" not in result


def _sse_or_json(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    data: dict[str, Any] = orjson.loads(lines[-1] if lines else response.text)
    return data


async def test_tasks_get_of_an_unknown_task_is_an_error(gateway: RunningGateway) -> None:
    reply = await _task(gateway, "tasks/get", "no-such-job")
    assert reply["error"]["code"] == -32602
    assert "no-such-job" in reply["error"]["message"]


async def test_tasks_cancel_cancels_the_job(gateway: RunningGateway) -> None:
    job_id = (await _call(gateway, "test_pipeline", value=5))["taskId"]
    reply = await _task(gateway, "tasks/cancel", job_id)
    assert reply["result"]["resultType"] == "complete"
    assert (await gateway.job(job_id))["status"] == "Cancelled"
    task = (await _task(gateway, "tasks/get", job_id))["result"]
    assert task["status"] == "cancelled"
    again = await _task(gateway, "tasks/cancel", job_id)  # finished: acknowledged as it is
    assert again["result"]["resultType"] == "complete"
    unknown = await _task(gateway, "tasks/cancel", "no-such-job")
    assert unknown["error"]["code"] == -32602


async def test_discover_advertises_the_extension(gateway: RunningGateway) -> None:
    reply = await _rpc(gateway, "server/discover", {"_meta": _meta()})
    assert TASKS in reply["result"]["capabilities"]["extensions"]


# -- get_job: the result for clients without the extension --------------------------------------


async def test_get_job_tells_where_a_job_stands_then_its_result(gateway: RunningGateway) -> None:
    async with Client(f"{gateway.url}/mcp") as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        created = await client.call_tool("test_pipeline", {"value": 2})
        job_id = created.structured_content["job_id"]
        running = await client.call_tool("get_job", {"job_id": job_id})
        await _finish(gateway)
        finished = await client.call_tool("get_job", {"job_id": job_id})
        unknown = await client.call_tool("get_job", {"job_id": "nope"})
    assert "get_job" in names
    assert running.is_error is False
    assert running.structured_content["status"] in {"Pending", "Running"}
    assert finished.is_error is False
    assert finished.structured_content == {"doubled": 4}
    assert unknown.is_error is True


# -- Host and Origin ----------------------------------------------------------------------------


async def test_foreign_host_and_origin_are_refused_unless_configured(sqlite_url: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": _meta()}}
    headers = {"Accept": ACCEPT, "MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"}
    async with serve_gateway(
        sqlite_url,
        allowed_hosts=("gw.example.com",),
        allowed_origins=("https://console.example.com",),
    ) as gateway:
        post = gateway.client.post
        evil_host = await post("/mcp", json=body, headers={**headers, "Host": "evil.test"})
        evil_origin = await post(
            "/mcp", json=body, headers={**headers, "Origin": "http://evil.test"}
        )
        public = await post(
            "/mcp",
            json=body,
            headers={
                **headers,
                "Host": "gw.example.com:443",
                "Origin": "https://console.example.com",
            },
        )
        local = await post(
            "/mcp", json=body, headers={**headers, "Origin": "http://localhost:3000"}
        )
        rest = await post("/tools/call", json={"name": "test_echo", "arguments": {"message": "x"}})
    assert evil_host.status_code == 421
    assert evil_origin.status_code == 403
    assert public.status_code == 200
    assert local.status_code == 200
    assert rest.status_code == 200  # the REST API is not behind the MCP check


async def test_get_on_mcp_answers_405_at_once(gateway: RunningGateway) -> None:
    response = await asyncio.wait_for(
        gateway.client.get("/mcp", headers={"Accept": "text/event-stream"}), 5
    )
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
