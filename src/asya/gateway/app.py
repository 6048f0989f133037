"""The gateway's composition root: ``create_app(settings)`` builds one ASGI app.

The lifespan migrates and opens the store, connects the publisher, starts the PostgreSQL
listener (fan-out of every replica's updates), the deadline sweeper, the payload retention
sweep (with a payload store) and the MCP session manager, and closes them all in reverse order.
Background loops are guarded: an unexpected end is logged and reported to ``on_fatal`` (the
CLI stops the server), never a silent death.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route

from asya.errors import ConfigError
from asya.gateway.cancellations import CancellationFeed
from asya.gateway.console import CONSOLE_ROUTES
from asya.gateway.http import Auth, BodyLimitMiddleware, TimingMiddleware, http_error
from asya.gateway.hub import Hub
from asya.gateway.listener import Listener
from asya.gateway.mcp import MCPEndpoint, build_server
from asya.gateway.mcp_calls import WaitingCalls
from asya.gateway.mcp_security import transport_security
from asya.gateway.metrics import GatewayMetrics
from asya.gateway.models import JobUpdate
from asya.gateway.overview import OVERVIEW_ROUTES
from asya.gateway.publisher import Publisher
from asya.gateway.results import JobResults
from asya.gateway.routes import ROUTES, Gateway
from asya.gateway.service import JobService
from asya.gateway.settings import GatewaySettings
from asya.gateway.store import JobStore
from asya.gateway.sweeper import run_sweeper
from asya.gateway.tools import ToolRegistry, load_tools
from asya.payloads import ClaimCheck, open_store
from asya.payloads.retention import sweep_jobs_forever
from asya.tracing import setup_tracing
from asya.transports.base import Transport

logger = logging.getLogger(__name__)


def _default_transport(settings: GatewaySettings) -> Transport:
    from asya.transports import open_transport

    try:
        return open_transport(settings.transport_url, exchange=settings.exchange)
    except ValueError as exc:
        raise ConfigError(settings.transport_variable, str(exc)) from exc


def _default_transports(settings: GatewaySettings) -> list[Transport]:
    """The publishing lanes: several connections to RabbitMQ (see :mod:`.publisher`)."""
    lanes = settings.publish_connections if settings.transport_url.startswith("amqp") else 1
    return [_default_transport(settings) for _ in range(lanes)]


def _guard(
    coro: Coroutine[Any, Any, None], name: str, on_fatal: Callable[[str], None]
) -> asyncio.Task[None]:
    task = asyncio.create_task(coro, name=name)

    def done(finished: asyncio.Task[None]) -> None:
        if finished.cancelled():
            return
        exc = finished.exception()
        reason = f"background task {name} stopped unexpectedly" + (f": {exc!r}" if exc else "")
        logger.critical(reason, exc_info=exc)
        on_fatal(reason)

    task.add_done_callback(done)
    return task


def create_app(
    settings: GatewaySettings,
    *,
    tools: ToolRegistry | None = None,
    transport: Transport | None = None,
    on_fatal: Callable[[str], None] | None = None,
) -> Starlette:
    """Build the app; the tools file is read now, so its errors surface before serving."""
    registry = (
        tools if tools is not None else load_tools(settings.config_path, settings.default_timeout)
    )
    if tools is None and settings.config_path is None:
        logger.warning("ASYA_CONFIG_PATH is not set: the gateway offers no tools")
    setup_tracing("asya-gateway")
    hub = Hub()
    metrics = GatewayMetrics()

    async def on_update(update: JobUpdate) -> None:
        await hub.publish(update)
        await cancellations.on_update(update)

    store = JobStore(
        settings.database_url,
        on_update=on_update,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
    )
    payloads = open_store(settings.payload_store_url) if settings.payload_store_url else None
    publisher = Publisher(
        [transport] if transport is not None else _default_transports(settings),
        settings.publish_concurrency,
        ClaimCheck(payloads, settings.payload_offload_threshold) if payloads is not None else None,
    )
    # PostgreSQL tells every replica at once; the poll is then only a safety net.
    cancellations = CancellationFeed(store, poll_interval=15.0 if store.notifies else 1.0)
    service = JobService(store, hub, publisher, metrics, JobResults(payloads))
    waiting_calls = WaitingCalls(store)
    auth = Auth(settings.api_keys, settings.actor_token)
    manager = StreamableHTTPSessionManager(
        app=build_server(service, registry, waiting_calls),
        stateless=True,
        security_settings=transport_security(settings.allowed_hosts, settings.allowed_origins),
    )
    fatal = on_fatal or (lambda reason: None)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if settings.auto_migrate:
            await store.migrate()
        await publisher.start()
        tasks = [
            _guard(run_sweeper(service, settings.sweep_interval), "sweeper", fatal),
            _guard(cancellations.poll(), "cancellation-poll", fatal),
        ]
        if payloads is not None:
            sweep = sweep_jobs_forever(payloads, settings.payload_retention, store.job_ends)
            tasks.append(_guard(sweep, "payload-retention", fatal))
        if store.notifies:
            listener = Listener(store, hub, on_cancelled=cancellations.announce)
            tasks.append(_guard(listener.run(), "pg-listener", fatal))
            try:
                await listener.wait_connected(10.0)
            except TimeoutError:
                logger.warning("LISTEN connection not up yet; SSE from other replicas may lag")
        logger.info(
            "gateway ready: %d tools, database %s, transport %s",
            len(registry),
            store.dialect,
            publisher.transport.name,
        )
        try:
            async with manager.run():
                yield
        finally:
            cancellations.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await publisher.close()
            await store.close()

    mcp_endpoint = MCPEndpoint(manager, auth, service, waiting_calls)
    app = Starlette(
        routes=[
            *OVERVIEW_ROUTES,
            *ROUTES,
            Route("/mcp", mcp_endpoint),
            Route("/mcp/", mcp_endpoint),
            *CONSOLE_ROUTES,
        ],
        middleware=[
            Middleware(TimingMiddleware, metrics=metrics),
            Middleware(BodyLimitMiddleware, max_body=settings.max_body),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
    )
    app.state.gateway = Gateway(
        settings=settings,
        tools=registry,
        store=store,
        publisher=publisher,
        service=service,
        metrics=metrics,
        auth=auth,
        cancellations=cancellations,
    )
    return app
