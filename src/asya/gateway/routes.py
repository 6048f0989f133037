"""The REST endpoints (docs/reference/gateway-api.md#rest-endpoints), thin: parse, authorise, call
the job service, answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from asya.errors import JobNotFound
from asya.gateway.cancellations import CancellationFeed, cancellation_events
from asya.gateway.diagnosis import diagnose
from asya.gateway.http import Auth, OrjsonResponse, error, read_json, unauthorized
from asya.gateway.listing import BadFilter, Cursor, JobFilter, list_item
from asya.gateway.metrics import CONTENT_TYPE_LATEST, GatewayMetrics
from asya.gateway.publisher import Publisher
from asya.gateway.service import (
    ArgumentsTooLarge,
    BadRequest,
    JobAlreadyFinished,
    JobService,
    PublishFailed,
    created_text,
)
from asya.gateway.settings import GatewaySettings
from asya.gateway.sse import EventStreamResponse, job_events, parse_last_event_id
from asya.gateway.store import JobStore, StoreUnavailable
from asya.gateway.tools import ArgumentsError, ToolRegistry

logger = logging.getLogger(__name__)

NOT_FOUND = "job not found"


@dataclass
class Gateway:
    """Everything a request handler needs, built once by ``create_app``."""

    settings: GatewaySettings
    tools: ToolRegistry
    store: JobStore
    publisher: Publisher
    service: JobService
    metrics: GatewayMetrics
    auth: Auth
    cancellations: CancellationFeed


Handler = Callable[[Request], Awaitable[Response]]


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def guarded(kind: str) -> Callable[[Handler], Handler]:
    """Check the caller's key (``client``, ``actor`` or ``either``) and map errors to status."""

    def wrap(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            auth = _gateway(request).auth
            if auth.required(kind):
                allowed = {
                    "client": auth.client_ok,
                    "actor": auth.actor_ok,
                    "either": auth.either_ok,
                }
                if not allowed[kind](request.headers):
                    return unauthorized()
            if "\x00" in request.path_params.get("job_id", ""):  # no id has one; PostgreSQL
                return error(404, NOT_FOUND)  # would refuse it as text
            try:
                return await handler(request)
            except JobNotFound:
                return error(404, NOT_FOUND)
            except (BadRequest, ArgumentsError) as exc:
                return error(400, str(exc))
            except StoreUnavailable as exc:
                logger.warning("%s %s: %s", request.method, request.url.path, exc)
                return error(503, str(exc))

        return endpoint

    return wrap


async def _json_object(request: Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


@guarded("client")
async def call_tool(request: Request) -> Response:
    gateway = _gateway(request)
    body = await _json_object(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("field 'name' (the tool name) is required")
    arguments = body.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise BadRequest("field 'arguments' must be an object")
    tool = gateway.tools.get(name)
    if tool is None:
        return error(404, f"unknown tool '{name}'")
    try:
        job = await gateway.service.create(tool, arguments)
    except ArgumentsTooLarge as exc:
        return error(413, exc.error, job_id=exc.job_id)
    except PublishFailed as exc:
        return error(503, exc.error, job_id=exc.job_id)
    return OrjsonResponse(
        {
            "content": [{"type": "text", "text": created_text(job.id)}],
            "structuredContent": {"job_id": job.id},
            "isError": False,
        }
    )


@guarded("client")
async def list_tools(request: Request) -> Response:
    return OrjsonResponse({"tools": [tool.to_json() for tool in _gateway(request).tools]})


@guarded("client")
async def get_job(request: Request) -> Response:
    service = _gateway(request).service
    job = await service.shown(await service.get(request.path_params["job_id"]))
    return OrjsonResponse(job.to_json())


async def _known_tool(gateway: Gateway, name: str) -> bool:
    """Offered now, or the tool of some stored job (a tool since removed from the file)."""
    return gateway.tools.get(name) is not None or await gateway.store.has_tool(name)


@guarded("client")
async def list_jobs(request: Request) -> Response:
    gateway = _gateway(request)
    try:
        wanted = JobFilter.from_query(request.query_params)
    except BadFilter as exc:
        raise BadRequest(str(exc)) from None
    after = None if wanted.after is None else (wanted.after.created_at, wanted.after.id)
    found = await gateway.store.list_jobs(
        status=wanted.status, tool=wanted.tool, limit=wanted.limit + 1, after=after
    )
    if wanted.tool and not found and not await _known_tool(gateway, wanted.tool):
        names = ", ".join(tool.name for tool in gateway.tools) or "none"
        raise BadRequest(f"unknown tool '{wanted.tool}' (tools: {names})")
    page = found[: wanted.limit]
    last = page[-1] if len(found) > wanted.limit else None
    next_cursor = None if last is None else Cursor(last.created_at, last.id).encode()
    return OrjsonResponse({"jobs": [list_item(job) for job in page], "next_cursor": next_cursor})


@guarded("client")
async def job_diagnosis(request: Request) -> Response:
    gateway = _gateway(request)
    job = await gateway.service.get(request.path_params["job_id"])
    return OrjsonResponse(await diagnose(job, gateway.publisher.transport))


@guarded("client")
async def stream_job(request: Request) -> Response:
    gateway = _gateway(request)
    job_id = request.path_params["job_id"]
    await gateway.service.get(job_id)
    events = job_events(
        job_id,
        store=gateway.store,
        hub=gateway.service.hub,
        results=gateway.service.results,
        after=parse_last_event_id(request.headers.get("last-event-id")),
        keepalive=gateway.settings.sse_keepalive,
    )
    return EventStreamResponse(events, gateway.metrics)


@guarded("actor")
async def post_progress(request: Request) -> Response:
    body = await _json_object(request)
    percent = await _gateway(request).service.progress(request.path_params["job_id"], body)
    return OrjsonResponse({"status": "ok", "progress_percent": percent})


@guarded("actor")
async def post_heartbeat(request: Request) -> Response:
    body = await _json_object(request)
    job = await _gateway(request).service.heartbeat(request.path_params["job_id"], body)
    return OrjsonResponse({"status": "ok", "progress_percent": job.progress_percent})


@guarded("actor")
async def post_final(request: Request) -> Response:
    body = await _json_object(request)
    job = await _gateway(request).service.final(request.path_params["job_id"], body)
    return OrjsonResponse({"status": "ok", "job_status": job.status})


@guarded("client")
async def cancel_job(request: Request) -> Response:
    try:
        job = await _gateway(request).service.cancel(request.path_params["job_id"])
    except JobAlreadyFinished as exc:
        return error(409, str(exc))
    return OrjsonResponse(job.to_json())


@guarded("actor")
async def stream_cancellations(request: Request) -> Response:
    """The sidecars' stream of cancelled job ids
    (docs/reference/gateway-api.md#cancellations)."""
    gateway = _gateway(request)
    events = cancellation_events(gateway.cancellations, gateway.settings.sse_keepalive)
    return EventStreamResponse(events, gateway.metrics)


@guarded("either")
async def job_active(request: Request) -> Response:
    service = _gateway(request).service
    job = await service.get(request.path_params["job_id"])
    if service.now_active(job):
        return OrjsonResponse({"active": True})
    return OrjsonResponse({"active": False}, status_code=410)


async def health(_request: Request) -> Response:
    return PlainTextResponse("OK")


async def ready(request: Request) -> Response:
    gateway = _gateway(request)
    checks: dict[str, str] = {}
    for name, probe in (("database", gateway.store.ping), ("broker", gateway.publisher.ping)):
        try:
            await asyncio.wait_for(probe(), 3)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unavailable: {type(exc).__name__}: {exc}"[:300]
    ok = all(value == "ok" for value in checks.values())
    return OrjsonResponse({"ready": ok, **checks}, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    body = _gateway(request).metrics.render()
    return Response(body, media_type=CONTENT_TYPE_LATEST)


ROUTES = [
    Route("/tools/call", call_tool, methods=["POST"]),
    Route("/tools", list_tools, methods=["GET"]),
    Route("/jobs", list_jobs, methods=["GET"]),
    Route("/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/jobs/{job_id}/stream", stream_job, methods=["GET"]),
    Route("/jobs/{job_id}/diagnosis", job_diagnosis, methods=["GET"]),
    Route("/jobs/{job_id}/progress", post_progress, methods=["POST"]),
    Route("/jobs/{job_id}/heartbeat", post_heartbeat, methods=["POST"]),
    Route("/jobs/{job_id}/final", post_final, methods=["POST"]),
    Route("/jobs/{job_id}/active", job_active, methods=["GET"]),
    Route("/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/cancellations", stream_cancellations, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
    Route("/ready", ready, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
