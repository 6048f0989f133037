"""The MCP Tasks extension (``io.modelcontextprotocol/tasks``, MCP 2026-07-28): a job is a task.

A client that declares the extension in a request's
``_meta["io.modelcontextprotocol/clientCapabilities"].extensions`` may get a task handle for
``tools/call`` (tools whose ``task`` setting is on); the task id is the job id, so ``tasks/get``
and ``tasks/cancel`` work on any gateway replica. Job states map onto task states: Pending and
Running are ``working`` (the progress goes in ``statusMessage``), Succeeded and Failed are
``completed`` with the tool result (a failure is an ``isError`` result with ``error_details``,
as the spec reserves ``failed`` for JSON-RPC errors), Cancelled is ``cancelled``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types import CLIENT_CAPABILITIES_META_KEY, INTERNAL_ERROR, INVALID_PARAMS, RequestParams
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ConfigDict, Field

from asya.errors import AsyaError, JobNotFound
from asya.gateway.models import Job, rfc3339
from asya.gateway.service import JobService
from asya.gateway.store import StoreUnavailable

logger = logging.getLogger(__name__)

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
#: How often a client should poll ``tasks/get``; a job's progress moves in steps, not in ms.
POLL_INTERVAL_MS = 1000
#: The job status a cancelled job ends in (docs/reference/jobs.md#statuses).
CANCELLED = "Cancelled"


class TaskIdParams(RequestParams):
    """The params of ``tasks/get`` and ``tasks/cancel``."""

    model_config = ConfigDict(populate_by_name=True)

    task_id: str = Field(alias="taskId")


def client_accepts_tasks(protocol_version: str, params: Mapping[str, Any] | None) -> bool:
    """Whether this request declared the extension (only 2026-era requests can)."""
    if protocol_version not in MODERN_PROTOCOL_VERSIONS or not params:
        return False
    meta = params.get("_meta")
    if not isinstance(meta, Mapping):
        return False
    capabilities = meta.get(CLIENT_CAPABILITIES_META_KEY)
    if not isinstance(capabilities, Mapping):
        return False
    extensions = capabilities.get("extensions")
    return isinstance(extensions, Mapping) and TASKS_EXTENSION in extensions


def _progress_text(job: Job) -> str:
    text = f"{job.status}: {job.progress_percent:g}%"
    if job.current_step:
        text += f" (step {job.current_step})"
    return f"{text} - {job.message}" if job.message else text


def task_fields(job: Job) -> dict[str, Any]:
    """The ``Task`` shape of a job (no status-specific payload)."""
    return {
        "taskId": job.id,
        "status": _task_status(job),
        "statusMessage": job.message if job.terminal else _progress_text(job),
        "createdAt": rfc3339(job.created_at),
        "lastUpdatedAt": rfc3339(job.updated_at),
        "ttlMs": None,  # jobs stay in the store; nothing discards them
        "pollIntervalMs": POLL_INTERVAL_MS,
    }


def _task_status(job: Job) -> str:
    if job.status == CANCELLED:
        return "cancelled"
    return "completed" if job.terminal else "working"


def create_task_result(job: Job) -> dict[str, Any]:
    """The handle ``tools/call`` answers with instead of a ``CallToolResult``."""
    return {"resultType": "task", **task_fields(job)}


def detailed_task(job: Job, tool_result: dict[str, Any] | None) -> dict[str, Any]:
    """What ``tasks/get`` answers: the task, with ``result`` once it is ``completed``."""
    task = task_fields(job)
    if task["status"] == "completed" and tool_result is not None:
        task["result"] = tool_result
    return task


async def load_job(service: JobService, task_id: str) -> Job:
    try:
        return await service.get(task_id)
    except JobNotFound:
        raise MCPError(code=INVALID_PARAMS, message=f"unknown task: {task_id}") from None
    except StoreUnavailable as exc:
        raise MCPError(code=INTERNAL_ERROR, message=str(exc)) from None


async def cancel_task(service: JobService, task_id: str) -> None:
    """``tasks/cancel``: cancel the job along its route; a finished job is acknowledged as is."""
    await load_job(service, task_id)
    try:
        await service.cancel(task_id)
    except JobNotFound:
        raise MCPError(code=INVALID_PARAMS, message=f"unknown task: {task_id}") from None
    except AsyaError as exc:  # e.g. already finished: the spec lets the task end otherwise
        logger.info("tasks/cancel for job %s: %s", task_id, exc)
