"""Checks run before the gateway serves, so that an expected start-up failure is one clear line.

Without them, a missing database or a taken port surfaces inside uvicorn's lifespan as a logged
traceback and exit 3. Each check raises an :mod:`asya.errors` class whose message says what to
fix; ``asya gateway`` prints it and exits with its code.
"""

from __future__ import annotations

import errno
import socket
from urllib.parse import urlsplit, urlunsplit

import sqlalchemy as sa

from asya.errors import BrokerRefused, StartupError, TransportError
from asya.gateway.database import (
    DatabaseMissing,
    StoreUnavailable,
    create_engine,
    is_database_missing,
)
from asya.gateway.store import JobStore


async def check_database(url: str, *, migrate: bool) -> None:
    """Connect once (and migrate when asked); StoreUnavailable/DatabaseMissing otherwise."""
    store = JobStore(url, pool_size=1)
    try:
        if migrate:
            await store.migrate()
        else:
            await store.ping()
    except StoreUnavailable as exc:
        if is_database_missing(exc):
            raise DatabaseMissing(url) from exc
        reason = exc.__cause__ or exc
        raise StoreUnavailable(f"cannot use the database {_redact(url)}: {reason}") from exc
    except Exception as exc:
        if is_database_missing(exc):
            raise DatabaseMissing(url) from exc
        raise StoreUnavailable(f"cannot use the database {_redact(url)}: {exc}") from exc
    finally:
        await store.close()


async def create_database(url: str) -> bool:
    """Create the PostgreSQL database named by ``url`` when it is missing; True if created.

    Connects to the server's ``postgres`` database to run ``CREATE DATABASE``; a server that
    refuses (no such right) raises StoreUnavailable with its reason. SQLite files are created
    on first use, so nothing is done for them.
    """
    if not url.startswith(("postgres://", "postgresql://")):
        return False
    try:
        await check_database(url, migrate=False)
        return False
    except DatabaseMissing as missing:
        name = missing.name
    parts = urlsplit(url)
    engine = create_engine(urlunsplit(parts._replace(path="/postgres")), pool_size=1)
    try:
        async with engine.connect() as conn:
            quoted = '"' + name.replace('"', '""') + '"'
            await conn.execute(sa.text(f"CREATE DATABASE {quoted}"))
    except Exception as exc:
        reason = getattr(exc, "orig", None) or exc
        raise StoreUnavailable(
            f"database {name!r} does not exist and could not be created: {reason}"
        ) from exc
    finally:
        await engine.dispose()
    return True


async def check_broker(url: str, exchange: str) -> None:
    """Fail on a broker that rejects the login (BrokerRefused); one that is down is fine here:
    the gateway serves, ``/ready`` reports it and each publish connects again."""
    from asya.transports import open_transport

    transport = open_transport(url, exchange=exchange)
    try:
        await transport.connect()
    except BrokerRefused:
        raise
    except TransportError:
        return
    finally:
        await transport.close()


def bind_listener(host: str, port: int) -> socket.socket:
    """The gateway's listening socket, bound now; StartupError when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise StartupError(
            f"cannot listen on {host}:{port}: {reason} "
            "(stop what listens there, or pick another port with --port / ASYA_GATEWAY_PORT)"
        ) from exc
    sock.set_inheritable(True)
    return sock


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
