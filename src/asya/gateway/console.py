"""The web console at ``/ui`` (docs/console.md): HTML shells, their static assets and the small
``GET /ui/config`` the pages read first.

The shells carry no data, so they are served without a key; every figure on a page comes from
the JSON API, which the page's JavaScript calls with the key the user entered (bearer), exactly
as any other client. Assets ship inside the package: no CDN, no build step.
"""

from __future__ import annotations

import html
from pathlib import Path
from string import Template

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from asya import __version__
from asya.gateway.http import OrjsonResponse
from asya.gateway.routes import Gateway

UI_DIR = Path(__file__).resolve().parent / "ui"
CANCEL_PATH = "/jobs/{job_id}/cancel"
_PAGES = {"jobs": "Jobs", "job": "Job", "actors": "Actors"}
_SHELL = Template((UI_DIR / "templates" / "page.html").read_text(encoding="utf-8"))


def _shell(page: str, job_id: str = "") -> Response:
    body = _SHELL.substitute(
        title=html.escape(_PAGES[page] + (f" {job_id}" if job_id else "")),
        page=page,
        job_id=html.escape(job_id, quote=True),
        version=html.escape(__version__),
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-cache"})


async def root(_request: Request) -> Response:
    return RedirectResponse("/ui", status_code=302)


async def jobs_page(_request: Request) -> Response:
    return _shell("jobs")


async def job_page(request: Request) -> Response:
    return _shell("job", request.path_params["job_id"])


async def actors_page(_request: Request) -> Response:
    return _shell("actors")


def _has_route(routes: list[BaseRoute], path: str) -> bool:
    return any(getattr(route, "path", None) == path for route in routes)


async def config(request: Request) -> Response:
    """What the pages must know before their first API call."""
    gateway: Gateway = request.app.state.gateway
    return OrjsonResponse(
        {
            "auth_required": gateway.auth.required("client"),
            "cancel": _has_route(request.app.routes, CANCEL_PATH),
            "version": __version__,
        }
    )


CONSOLE_ROUTES: list[BaseRoute] = [
    Route("/", root, methods=["GET"]),
    Route("/ui", jobs_page, methods=["GET"]),
    Route("/ui/", jobs_page, methods=["GET"]),
    Route("/ui/config", config, methods=["GET"]),
    Route("/ui/actors", actors_page, methods=["GET"]),
    Route("/ui/jobs/{job_id}", job_page, methods=["GET"]),
    Mount("/ui/static", StaticFiles(directory=UI_DIR / "static"), name="ui-static"),
]
