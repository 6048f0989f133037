"""The console's ``GET /ui/config``: the cancel button follows the cancel endpoint."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from asya.gateway.console import CONSOLE_ROUTES
from asya.gateway.http import Auth


async def _cancel(_request: Request) -> Response:
    return Response()


async def _config(with_cancel: bool, keys: tuple[str, ...] = ()) -> dict[str, object]:
    extra = [Route("/jobs/{job_id}/cancel", _cancel, methods=["POST"])] if with_cancel else []
    app = Starlette(routes=[*extra, *CONSOLE_ROUTES])
    app.state.gateway = SimpleNamespace(auth=Auth(keys, None))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as client:
        answer: dict[str, object] = (await client.get("/ui/config")).json()
    return answer


async def test_cancel_is_offered_only_where_the_endpoint_exists() -> None:
    assert (await _config(with_cancel=True))["cancel"] is True
    assert (await _config(with_cancel=False))["cancel"] is False


async def test_config_says_when_a_key_is_needed() -> None:
    assert (await _config(False, keys=("k",)))["auth_required"] is True
    assert (await _config(False))["auth_required"] is False
