"""HTTP plumbing shared by the routes: JSON responses, errors, auth, body limit, timing."""

from __future__ import annotations

import hmac
import time
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asya.gateway.metrics import GatewayMetrics
from asya.gateway.service import BadRequest


class OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def error(status: int, message: str, **extra: Any) -> Response:
    return OrjsonResponse({"error": message, **extra}, status_code=status)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (no such route, wrong method) as the JSON error every route uses."""
    assert isinstance(exc, HTTPException)
    message = {404: f"no route {request.url.path}", 405: f"method {request.method} not allowed"}
    response = error(exc.status_code, message.get(exc.status_code, str(exc.detail)))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def _bearer(headers: Any) -> str | None:
    value = headers.get("authorization") or ""
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _matches(token: str | None, accepted: tuple[str, ...]) -> bool:
    if token is None:
        return False
    return any(hmac.compare_digest(token.encode(), key.encode()) for key in accepted)


class Auth:
    """``ASYA_GATEWAY_API_KEYS`` for clients, ``ASYA_GATEWAY_ACTOR_TOKEN`` for actors."""

    def __init__(self, api_keys: tuple[str, ...], actor_token: str | None) -> None:
        self.api_keys = api_keys
        self.actor_tokens = (actor_token,) if actor_token else ()

    def required(self, kind: str) -> bool:
        """Whether ``kind`` (client, actor, either) needs a key at all (no header parsing)."""
        if kind == "client":
            return bool(self.api_keys)
        if kind == "actor":
            return bool(self.actor_tokens)
        return bool(self.api_keys or self.actor_tokens)

    def client_ok(self, headers: Any) -> bool:
        return not self.api_keys or _matches(_bearer(headers), self.api_keys)

    def actor_ok(self, headers: Any) -> bool:
        return not self.actor_tokens or _matches(_bearer(headers), self.actor_tokens)

    def either_ok(self, headers: Any) -> bool:
        if not self.api_keys and not self.actor_tokens:
            return True
        return _matches(_bearer(headers), self.api_keys + self.actor_tokens)


def unauthorized() -> Response:
    response = error(401, "unauthorized: a valid 'Authorization: Bearer <key>' header is required")
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def read_json(request: Request) -> Any:
    """The JSON body, or ``BadRequest`` (400)."""
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest("request body is not valid JSON") from exc


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Answer 413 for bodies over ``max_body`` without buffering them (header or stream)."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    def _too_large(self) -> Response:
        return error(413, f"request body larger than {self.max_body} bytes (ASYA_GATEWAY_MAX_BODY)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_body
                except ValueError:
                    too_big = False
                if too_big:
                    await self._too_large()(scope, receive, send)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await self._too_large()(scope, receive, send)


class TimingMiddleware:
    """Request latency by method, route template and status (``/metrics``).

    Starlette's router records the matched ``endpoint`` in the scope (not the route), so the
    template is looked up from the endpoint, in a table built from the router's routes once.
    """

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self._templates: dict[Any, str] | None = None

    def _template(self, scope: Scope) -> str:
        router = scope.get("router")
        if self._templates is None and router is not None:
            templates: dict[Any, str] = {}
            for route in router.routes:
                endpoint = getattr(route, "endpoint", None)
                if endpoint is not None:
                    templates.setdefault(endpoint, route.path)
            self._templates = templates
        endpoint = scope.get("endpoint")
        if self._templates is None or endpoint is None:
            return "unmatched"
        return self._templates.get(endpoint, "unmatched")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            path = self._template(scope)
            self.metrics.request_duration.labels(scope["method"], path, str(status)).observe(
                time.perf_counter() - start
            )
