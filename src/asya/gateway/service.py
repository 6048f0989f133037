"""What the gateway does with jobs, shared by the REST routes, MCP and the sweeper.

Creating a job (validate, store, publish, mark running), applying actor reports (progress,
heartbeats, finals) and waiting for a job all live here, so ``/tools/call`` and MCP
``tools/call`` cannot drift apart.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from asya.errors import AsyaError, JobNotFound, MessageTooLargeError, TransportError
from asya.gateway import failures, fanin
from asya.gateway.call_span import tool_call_span
from asya.gateway.hub import Hub
from asya.gateway.metrics import GatewayMetrics
from asya.gateway.models import TERMINAL, Job, JobState, JobUpdate, utcnow
from asya.gateway.percent import HEARTBEAT_STEP_STATUS, STEP_WEIGHTS, step_percent
from asya.gateway.publisher import Publisher, job_message
from asya.gateway.results import JobResults, ResultRefused
from asya.gateway.store import JobStore, Outcome, StoreUnavailable
from asya.gateway.tools import Tool

logger = logging.getLogger(__name__)


class BadRequest(AsyaError):
    """The request body is malformed (400)."""


class PublishFailed(AsyaError):
    """The first publish failed; the job is Failed (503 with the job id)."""

    def __init__(self, job_id: str, error: str) -> None:
        super().__init__(error)
        self.job_id = job_id
        self.error = error


class ArgumentsTooLarge(PublishFailed):
    """The first message is over the transport's size limit and cannot go by reference (no
    payload store): the job is Failed with ``message_too_large`` (413 with the job id)."""


class JobAlreadyFinished(AsyaError):
    """The job ended before it could be cancelled (409 ``job already <status>``)."""

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(f"job already {status}")
        self.job_id = job_id
        self.status = status


def created_text(job_id: str) -> str:
    return (
        f"Job created successfully with ID: {job_id}\n\n"
        "Use the following endpoints:\n"
        f"- Status: GET /jobs/{job_id}\n"
        f"- Real-time updates: GET /jobs/{job_id}/stream (SSE)"
    )


def timeout_error(seconds: float | None) -> str:
    return f"job timed out after {seconds or 0:g} s"


def _field(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(name)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadRequest(f"field '{name}' is missing or not of the right type")
    return value


def _optional_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"field '{name}' must be a string")
    return value


def _error_text(error: Any) -> str:
    if error is None or error == "":
        return "unknown error"
    return error if isinstance(error, str) else orjson.dumps(error).decode()


def _branch_path(branch: Any) -> fanin.Path:
    try:
        return fanin.parse_branch(branch)
    except fanin.BadBranch as exc:
        raise BadRequest(str(exc)) from exc


class JobService:
    def __init__(
        self,
        store: JobStore,
        hub: Hub,
        publisher: Publisher,
        metrics: GatewayMetrics,
        results: JobResults | None = None,
    ) -> None:
        self.store = store
        self.hub = hub
        self.publisher = publisher
        self.metrics = metrics
        self.results = results or JobResults(None)

    # -- creating ------------------------------------------------------------------------

    async def create(self, tool: Tool, arguments: Mapping[str, Any]) -> Job:
        """Validate, store, publish; raises ArgumentsError, PublishFailed, StoreUnavailable."""
        started_ns = time.time_ns()
        payload = tool.prepare_arguments(arguments)
        job_id = str(uuid.uuid4())
        steps = list(tool.route)
        job = await self.store.create_job(
            job_id=job_id,
            tool=tool.name,
            steps=steps,
            metadata={"job_id": job_id},
            payload=payload,
            timeout_seconds=tool.timeout,
        )
        self.metrics.jobs_created.labels(tool.name).inc()
        message = job_message(job)
        with tool_call_span(tool.name, job_id, steps[0], started_ns) as trace:
            if trace is not None:
                message["trace"] = trace  # docs/reference/message.md#trace
            try:
                await self.publisher.publish(steps[0], message)
            except MessageTooLargeError as exc:
                error = failures.too_large_error(exc)
                logger.warning("job %s: %s", job_id, error)
                details = failures.too_large_details(steps[0], error)
                await self._settled(await self.store.fail(job_id, error, error_details=details))
                raise ArgumentsTooLarge(job_id, error) from exc
            except TransportError as exc:
                error = f"could not publish to {steps[0]!r}: {exc}"
                logger.error("job %s: %s", job_id, error)
                self.metrics.publish_failures.labels(tool.name).inc()
                details = failures.publish_details(steps[0], error)
                await self._settled(await self.store.fail(job_id, error, error_details=details))
                raise PublishFailed(job_id, error) from exc
        try:
            await self._settled(await self.store.mark_running(job_id))
        except StoreUnavailable as exc:
            # The message is on its way: the job goes on, and the caller must learn its id.
            logger.warning("job %s: published, but not marked Running: %s", job_id, exc)
        return job

    # -- reading -------------------------------------------------------------------------

    async def get(self, job_id: str) -> Job:
        job = await self.store.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    async def shown(self, job: Job) -> Job:
        """``job`` as clients see it: a result stored by reference read back
        (docs/reference/jobs.md#results-by-reference)."""
        return await self.results.job(job) if job.terminal else job

    # -- reports from actors -------------------------------------------------------------

    async def progress(self, job_id: str, body: Mapping[str, Any]) -> float:
        step_status = body.get("status")
        if not isinstance(step_status, str) or step_status not in STEP_WEIGHTS:
            raise BadRequest("field 'status' must be one of received, processing, completed")
        step_index = _field(body, "step_index", int)
        total_steps = _field(body, "total_steps", int)
        if step_index < 0 or total_steps < 1:
            raise BadRequest("step_index must be >= 0 and total_steps >= 1")
        step = _optional_str(body, "step") or _optional_str(body, "actor_name") or ""
        message = _optional_str(body, "message")
        outputs = body.get("outputs")
        if step_status == "completed" and isinstance(outputs, int) and outputs > 1:
            # The step fanned out: its part ends only when its branches do, so it counts as
            # still processing (docs/reference/jobs.md#fan-out): 100 % comes with the last branch.
            percent = step_percent(step_index, total_steps, "processing")
        else:
            percent = step_percent(step_index, total_steps, step_status)
        branch = body.get("branch")
        path = _branch_path(branch) if branch is not None else ()
        if path:
            tree_percent = await self.store.record_branch_progress(job_id, path, percent)
            if tree_percent is None:
                raise JobNotFound(job_id)
            percent = tree_percent
        outcome = await self.store.record_progress(
            job_id,
            step=step,
            step_index=step_index,
            percent=percent,
            step_status=step_status,
            message=message,
            branch=fanin.branch_json(path) if path else None,
        )
        job = await self._settled(outcome, report="progress")
        return job.progress_percent

    async def heartbeat(self, job_id: str, body: Mapping[str, Any]) -> JobState:
        status = body.get("status")
        if status not in (*HEARTBEAT_STEP_STATUS, "error"):
            raise BadRequest(
                "field 'status' must be one of picked_up, processing, completed, error"
            )
        actor = _optional_str(body, "actor_name") or ""
        message = _optional_str(body, "message")
        if status == "error":
            error = message or f"heartbeat error from {actor}"
            details = failures.heartbeat_details(actor, error)
            outcome = await self.store.fail(job_id, error, error_details=details)
            return await self._settled(outcome, report="heartbeat")
        job = await self.get(job_id)
        steps = job.route["steps"]
        index = steps.index(actor) if actor in steps else job.route["current"]
        step_status = HEARTBEAT_STEP_STATUS[status]
        outcome = await self.store.record_progress(
            job_id,
            step=actor or steps[index],
            step_index=index,
            percent=step_percent(index, len(steps), step_status),
            step_status=step_status,
            message=message,
        )
        return await self._settled(outcome, report="heartbeat")

    async def final(self, job_id: str, body: Mapping[str, Any]) -> JobState:
        status = body.get("status")
        if status not in ("succeeded", "failed"):
            raise BadRequest("field 'status' must be 'succeeded' or 'failed'")
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise BadRequest("field 'metadata' must be an object")
        try:
            details = failures.checked_details(body.get("error_details"))
        except failures.DetailsInvalid as exc:
            raise BadRequest(str(exc)) from None
        branch = body.get("branch")
        path = _branch_path(branch) if branch is not None else ()
        result: Any = None
        error: str | None = None
        if status == "succeeded":
            try:
                result = await self.results.accept(body.get("result"), body.get("result_ref"))
            except ResultRefused as exc:
                logger.warning("job %s: final report refused: %s", job_id, exc)
                status, error, details = "failed", exc.error, exc.details
        else:
            error = _error_text(body.get("error"))
            if details is None:
                details = failures.details_of_error_text(error)
        if path:
            leaf = fanin.Leaf(path, status == "succeeded", result, error, details)
            outcome = await self.store.finish_branch(job_id, leaf, metadata)
            return await self._settled(outcome, report=f"final of branch {fanin.path_key(path)}")
        if status == "succeeded":
            outcome = await self.store.succeed(job_id, result, metadata)
        else:
            outcome = await self.store.fail(job_id, error or "unknown error", metadata, details)
        return await self._settled(outcome, report="final")

    async def time_out(self, job: Job) -> bool:
        """Fail an expired job; False when it was already terminal (another replica won)."""
        details = failures.deadline_details(job.timeout_seconds, job.current_step)
        outcome = await self.store.fail(
            job.id, timeout_error(job.timeout_seconds), error_details=details
        )
        if outcome.update is not None:
            logger.info("job %s timed out after %s s", job.id, job.timeout_seconds)
        await self._settled(outcome, report="deadline")
        return outcome.update is not None

    # -- cancelling ----------------------------------------------------------------------

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job that has not ended: the job, now Cancelled.

        Raises JobNotFound for an unknown job and JobAlreadyFinished for an ended one. The
        store's update reaches every replica's cancellation feed (:mod:`.cancellations`), and
        through it every sidecar, which drops the job's messages from then on.
        """
        outcome = await self.store.cancel(job_id)
        state = await self._settled(outcome)
        if outcome.update is None:
            raise JobAlreadyFinished(job_id, state.status)
        logger.info("job %s cancelled", job_id)
        return await self.get(job_id)

    async def _settled(self, outcome: Outcome, report: str = "") -> JobState:
        """The job after a change; 404 for an unknown job, log ignored reports, count ends."""
        if outcome.job is None:
            raise JobNotFound("job not found")
        if outcome.update is None:
            if report:
                logger.info(
                    "job %s is already %s: %s ignored", outcome.job.id, outcome.job.status, report
                )
        elif outcome.update.status in TERMINAL:
            self.metrics.jobs_finished.labels(outcome.job.tool, outcome.job.status).inc()
        return outcome.job

    # -- waiting -------------------------------------------------------------------------

    async def wait(
        self,
        job_id: str,
        limit: float | None,
        on_update: Callable[[JobUpdate], Awaitable[None]] | None = None,
    ) -> Job:
        """Follow a job until it is terminal (or ``limit`` seconds pass); returns the job."""
        async with self.hub.subscribe(job_id) as queue:
            last = 0
            for update in await self.store.list_updates(job_id):
                last = update.sequence
                if on_update is not None:
                    await on_update(update)
            job = await self.get(job_id)
            loop = asyncio.get_running_loop()
            end = None if limit is None else loop.time() + limit
            while not job.terminal:
                remaining = None if end is None else end - loop.time()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    incoming = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
                if incoming is None:  # shutting down
                    break
                if incoming.sequence <= last:
                    continue
                last = incoming.sequence
                if on_update is not None:
                    await on_update(incoming)
                if incoming.terminal:
                    job = await self.get(job_id)
        return job if job.terminal else await self.get(job_id)

    @staticmethod
    def now_active(job: Job) -> bool:
        return job.active(utcnow())
