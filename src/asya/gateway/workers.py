"""``ASYA_GATEWAY_WORKERS`` > 1: several gateway processes serving one port.

One gateway process is bound by one CPU core (its event loop). On PostgreSQL the gateway is
already built to run as replicas — SSE updates reach every process through LISTEN/NOTIFY, job
changes are single guarded statements, and the deadline sweeper's "fail" only changes a job
that is not yet terminal, so processes sweeping together fail a job once — so workers are just
replicas sharing a socket. uvicorn's supervisor binds the socket once, starts the workers
(each builds its own app from the environment through :func:`create_worker_app`), restarts a
worker that dies and stops them all on SIGTERM/SIGINT.

SQLite fans updates out inside one process, so it is refused with more than one worker.
"""

from __future__ import annotations

import logging
import os
import signal
import socket

from starlette.applications import Starlette

from asya.errors import ConfigError
from asya.gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

FACTORY = "asya.gateway.workers:create_worker_app"


def check_workers(settings: GatewaySettings) -> None:
    """Refuse a configuration that several workers cannot serve correctly."""
    if settings.workers > 1 and not settings.database_url.startswith(("postgres://", "postgresql")):
        raise ConfigError(
            "ASYA_GATEWAY_WORKERS",
            f"{settings.workers} workers need PostgreSQL (ASYA_DATABASE_URL): with SQLite, "
            "progress would only reach SSE streams of the worker that received it",
        )


def listening_socket(host: str, port: int) -> socket.socket:
    """The shared socket, created as TCP explicitly.

    asyncio turns Nagle's algorithm off (TCP_NODELAY) only on connections accepted from a
    socket whose protocol is ``IPPROTO_TCP``; uvicorn's own ``bind_socket`` leaves it 0, and a
    response written as headers then body then waits for the client's delayed ACK: 40 ms per
    request.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _stop_this_worker(reason: str) -> None:
    """A background task of this worker died: stop it; the supervisor starts a fresh one."""
    logger.critical("stopping worker %d: %s", os.getpid(), reason)
    os.kill(os.getpid(), signal.SIGTERM)


def create_worker_app() -> Starlette:
    """The app of one worker process, from the environment (uvicorn calls this factory)."""
    from asya.gateway.app import create_app
    from asya.logconfig import configure_logging

    configure_logging("gateway")
    return create_app(GatewaySettings.from_env(), on_fatal=_stop_this_worker)


def serve_workers(settings: GatewaySettings) -> bool:
    """Bind ``settings.host:port`` and run ``settings.workers`` workers until told to stop.

    False when a worker could not start (the supervisor then stops them all).
    """
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    check_workers(settings)
    # the workers read their settings from the environment: carry command-line overrides there
    os.environ["ASYA_GATEWAY_HOST"] = settings.host
    os.environ["ASYA_GATEWAY_PORT"] = str(settings.port)
    config = uvicorn.Config(
        FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=5,
        access_log=False,
    )
    sock = listening_socket(settings.host, settings.port)
    supervisor = Multiprocess(config, sockets=[sock])
    try:
        supervisor.run()
    finally:
        sock.close()
    return all(worker.exitcode != STARTUP_FAILURE for worker in supervisor.processes)
