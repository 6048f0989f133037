"""``asya gateway`` (serve) and ``asya gateway migrate`` (apply the database migrations).

Configured by the environment (docs/reference/gateway-api.md#environment); ``--host``/``--port``
override them. A bad setting or tools file exits 2 naming what to fix; a failed start (database
down or missing, port taken) exits 1 with one line saying why; a graceful SIGTERM/SIGINT exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import replace
from types import FrameType

import click
import uvicorn

from asya.errors import ConfigError
from asya.gateway.settings import GatewaySettings


class GracefulServer(uvicorn.Server):
    """Ends open SSE streams when shutdown starts, and exits 0 after a graceful SIGTERM/SIGINT
    (plain uvicorn waits out its grace period on streams and re-raises the signal)."""

    def __init__(self, config: uvicorn.Config, on_shutdown: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_shutdown = on_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._on_shutdown()
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def _settings_or_exit(host: str | None = None, port: int | None = None) -> GatewaySettings:
    try:
        settings = GatewaySettings.from_env()
    except ConfigError as exc:
        click.echo(f"asya gateway: configuration error: {exc}", err=True)
        sys.exit(2)
    if host is not None:
        settings = replace(settings, host=host)
    if port is not None:
        settings = replace(settings, port=port)
    return settings


@click.group(invoke_without_command=True)
@click.option("--host", default=None, help="Listen address (ASYA_GATEWAY_HOST, 0.0.0.0).")
@click.option("--port", type=int, default=None, help="Listen port (ASYA_GATEWAY_PORT, 8080).")
@click.pass_context
def gateway(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the MCP + REST gateway (jobs in PostgreSQL/SQLite, progress over SSE)."""
    if ctx.invoked_subcommand is not None:
        return
    from asya.gateway.app import create_app
    from asya.gateway.tools import ToolsConfigError
    from asya.logconfig import configure_logging

    configure_logging("gateway")
    settings = _settings_or_exit(host=host, port=port)
    if settings.workers > 1:
        _serve_workers(settings)
        return
    server: GracefulServer | None = None
    failures: list[str] = []

    def on_fatal(reason: str) -> None:
        failures.append(reason)
        if server is not None:
            server.should_exit = True

    try:
        app = create_app(settings, on_fatal=on_fatal)
    except (ConfigError, ToolsConfigError) as exc:
        click.echo(f"asya gateway: configuration error: {exc}", err=True)
        sys.exit(2)
    listener = _preflight(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=5,
        access_log=False,
    )
    gateway = app.state.gateway

    def end_streams() -> None:
        gateway.service.hub.close()
        gateway.cancellations.close()

    server = GracefulServer(config, on_shutdown=end_streams)
    server.run(sockets=[listener])
    if not server.started:
        click.echo("asya gateway: start-up failed (see the log above)", err=True)
        sys.exit(1)
    if failures:
        sys.exit(1)


def _preflight(settings: GatewaySettings) -> socket.socket:
    """Bind the port, reach (and migrate) the database, try the broker's login before serving.

    Each raises an AsyaError whose one-line message the ``asya`` entry point prints (exit 1).
    """
    from asya.gateway.preflight import bind_listener, check_broker, check_database

    listener = bind_listener(settings.host, settings.port)
    try:
        asyncio.run(check_database(settings.database_url, migrate=settings.auto_migrate))
        asyncio.run(check_broker(settings.transport_url, settings.exchange))
    except BaseException:
        listener.close()
        raise
    return listener


def _serve_workers(settings: GatewaySettings) -> None:
    """ASYA_GATEWAY_WORKERS > 1: check what a worker would refuse here (exit 2), then serve."""
    from asya.gateway.tools import ToolsConfigError, load_tools
    from asya.gateway.workers import check_workers, serve_workers

    try:
        check_workers(settings)
        load_tools(settings.config_path)
    except (ConfigError, ToolsConfigError) as exc:
        click.echo(f"asya gateway: configuration error: {exc}", err=True)
        sys.exit(2)
    from asya.gateway.preflight import check_database

    asyncio.run(check_database(settings.database_url, migrate=settings.auto_migrate))
    try:
        started = serve_workers(settings)
    except OSError as exc:  # the port is taken or the address is not ours
        where = f"{settings.host}:{settings.port}"
        click.echo(f"asya gateway: cannot listen on {where}: {exc}", err=True)
        sys.exit(1)
    if not started:
        click.echo("asya gateway: start-up failed (see the log above)", err=True)
        sys.exit(1)


@gateway.command()
def migrate() -> None:
    """Apply the database migrations to ASYA_DATABASE_URL once, then exit."""
    from asya.gateway.migrations import current_revision
    from asya.gateway.store import JobStore, StoreUnavailable
    from asya.logconfig import configure_logging

    configure_logging("gateway")
    settings = _settings_or_exit()

    async def run() -> str | None:
        store = JobStore(settings.database_url)
        try:
            await store.migrate()
            return await current_revision(store.engine)
        finally:
            await store.close()

    try:
        revision = asyncio.run(run())
    except StoreUnavailable as exc:
        click.echo(f"asya gateway migrate: {exc}", err=True)
        sys.exit(1)
    click.echo(f"database migrated to revision {revision}")
