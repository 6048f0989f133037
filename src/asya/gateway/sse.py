"""Server-sent events for one job (docs/reference/gateway-api.md#sse): status, replay, live updates,
close when terminal.

The final update of a Failed job carries the job's ``error_details`` (read from the job row when
the update is sent: updates themselves keep only the one-line ``error``); a result stored by
reference is read back into it (docs/reference/jobs.md#results-by-reference).

The stream subscribes to the in-process hub *before* reading the job and its updates from the
database, so nothing published in between is missed; updates seen twice (replay and live) are
dropped by their sequence number. An idle stream costs one queue and a timer: no polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator

import anyio
import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from asya.gateway.hub import Hub
from asya.gateway.metrics import GatewayMetrics
from asya.gateway.models import FAILED, JobUpdate
from asya.gateway.results import JobResults
from asya.gateway.store import JobStore, StoreUnavailable

logger = logging.getLogger(__name__)

KEEPALIVE = b": keep-alive\n\n"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def status_event(status: str) -> bytes:
    return f"event: status\ndata: {status}\n\n".encode()


def update_event(update: JobUpdate) -> bytes:
    data = orjson.dumps(update.to_json()).decode()
    return f"id: {update.sequence}\nevent: update\ndata: {data}\n\n".encode()


async def with_error_details(update: JobUpdate, store: JobStore) -> JobUpdate:
    """The final update of a Failed job with the job's ``error_details`` (unchanged otherwise,
    or when the database cannot say)."""
    if update.status != FAILED:
        return update
    try:
        job = await store.get_job(update.job_id)
    except StoreUnavailable as exc:
        logger.warning("SSE for job %s: final update without error_details: %s", update.job_id, exc)
        return update
    if job is None or job.error_details is None:
        return update
    return dataclasses.replace(update, error_details=job.error_details)


def parse_last_event_id(value: str | None) -> int:
    """The sequence to resume after; anything unparsable means "from the start"."""
    if not value:
        return 0
    try:
        return max(0, int(value.strip()))
    except ValueError:
        return 0


async def job_events(
    job_id: str,
    *,
    store: JobStore,
    hub: Hub,
    results: JobResults | None = None,
    after: int = 0,
    keepalive: float = 15.0,
) -> AsyncIterator[bytes]:
    async with hub.subscribe(job_id) as queue:
        try:
            job = await store.get_job(job_id)
            replay = await store.list_updates(job_id, after=after)
        except StoreUnavailable as exc:
            # The response has started (200): end it; the client resumes with Last-Event-ID.
            logger.warning("SSE for job %s ended: %s", job_id, exc)
            return
        if job is None:
            return
        results = results or JobResults(None)

        async def final_event(update: JobUpdate) -> bytes:
            return update_event(await results.update(await with_error_details(update, store)))

        yield status_event(job.status)
        last = after
        for update in replay:
            if update.terminal:
                yield await final_event(update)
                return
            yield update_event(update)
            last = update.sequence
        if job.terminal:
            return
        while True:
            try:
                incoming = await asyncio.wait_for(queue.get(), keepalive)
            except TimeoutError:
                yield KEEPALIVE
                continue
            if incoming is None:  # shutting down
                return
            if incoming.sequence <= last:
                continue
            if incoming.terminal:
                yield await final_event(incoming)
                return
            yield update_event(incoming)
            last = incoming.sequence


class EventStreamResponse(StreamingResponse):
    """A streaming response that stops its generator as soon as the client disconnects."""

    def __init__(self, content: AsyncIterator[bytes], metrics: GatewayMetrics) -> None:
        super().__init__(content, media_type="text/event-stream", headers=SSE_HEADERS)
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._metrics.sse_clients.inc()
        try:
            async with anyio.create_task_group() as group:

                async def stream() -> None:
                    with contextlib.suppress(OSError):  # the client went away mid-write
                        await self.stream_response(send)
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            self._metrics.sse_clients.dec()
