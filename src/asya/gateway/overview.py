"""The endpoints behind the console's overview and ``asya status``: ``GET /actors`` and
``GET /jobs/summary`` (docs/reference/gateway-api.md#actors, #jobs-summary)."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from asya.envconfig import to_seconds
from asya.gateway.actors import ActorsProbe, watched_queues
from asya.gateway.http import OrjsonResponse
from asya.gateway.models import STATUSES, rfc3339, utcnow
from asya.gateway.routes import Gateway, guarded
from asya.gateway.service import BadRequest

DEFAULT_WINDOW = "1h"
MAX_WINDOW_SECONDS = 31 * 24 * 3600


def _probe(request: Request) -> ActorsProbe:
    """One probe per app (it keeps the previous depths that rates are derived from)."""
    state = request.app.state
    probe: ActorsProbe | None = getattr(state, "actors_probe", None)
    if probe is None:
        gateway: Gateway = state.gateway
        settings = gateway.settings
        queues = watched_queues(gateway.tools, settings.happy_end, settings.error_end)
        probe = ActorsProbe(gateway.publisher.transport, queues, settings.up_status_file)
        state.actors_probe = probe
    return probe


@guarded("client")
async def list_actors(request: Request) -> Response:
    return OrjsonResponse(await _probe(request).snapshot())


def window_seconds(raw: str) -> float:
    """``since`` as seconds: ``1h``, ``15m``, ``90s`` or a number; BadRequest otherwise."""
    try:
        seconds = to_seconds(float(raw)) if raw.replace(".", "", 1).isdigit() else to_seconds(raw)
    except ValueError as exc:
        raise BadRequest(f"since must be a duration like 1h or 15m: {exc}") from None
    if not 0 < seconds <= MAX_WINDOW_SECONDS:
        raise BadRequest("since must be more than 0 and at most 31 days")
    return seconds


@guarded("client")
async def jobs_summary(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    seconds = window_seconds(request.query_params.get("since") or DEFAULT_WINDOW)
    since = utcnow() - timedelta(seconds=seconds)
    found = await gateway.store.count_by_status(since)
    counts = {status: found.get(status, 0) for status in STATUSES}
    return OrjsonResponse(
        {
            "since": rfc3339(since),
            "window_seconds": seconds,
            "counts": counts,
            "total": sum(counts.values()),
        }
    )


#: Before the API's own routes: ``/jobs/summary`` must not be taken for a job id.
OVERVIEW_ROUTES = [
    Route("/actors", list_actors, methods=["GET"]),
    Route("/jobs/summary", jobs_summary, methods=["GET"]),
]
