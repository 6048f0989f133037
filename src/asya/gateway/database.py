"""Database connections for the job store: URLs, engines, and what counts as "unavailable".

``postgres://``/``postgresql://`` URLs use asyncpg, ``sqlite:///path`` aiosqlite. Driver errors
meaning "the database is not there" become :class:`StoreUnavailable` (answered 503) so the rest
of the gateway never sees a driver exception; the pool pre-pings, so the gateway recovers by
itself when the database returns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from asya.errors import TransientError


class StoreUnavailable(TransientError):
    """The database did not answer (or has no schema); callers answer 503."""


def sqlalchemy_url(url: str) -> str:
    """``postgres://``/``postgresql://``/``sqlite:///`` → the async driver's URL."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        return "sqlite+aiosqlite:///" + path
    raise ValueError(f"unsupported database URL {url!r}")


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _loads(value: Any) -> Any:
    # SQLite's JSON columns have numeric affinity: a stored scalar may come back already a number
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def create_engine(url: str) -> AsyncEngine:
    """A pooled engine that pre-pings (so it recovers after an outage) and uses orjson."""
    target = sqlalchemy_url(url)
    codec = {"json_serializer": _dumps, "json_deserializer": _loads}
    if target.startswith("postgresql"):
        return create_async_engine(
            target,
            **codec,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=20,
            pool_timeout=10,
            connect_args={"timeout": 5, "command_timeout": 30},
        )
    engine = create_async_engine(target, **codec, pool_pre_ping=True, connect_args={"timeout": 30})
    sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError):
        return (
            exc.connection_invalidated
            or isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
            or isinstance(exc.orig, OSError)
            or "connection" in str(exc.orig).lower()
        )
    return isinstance(exc, OSError | TimeoutError | sa_exc.TimeoutError)


def _schema_missing(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return isinstance(exc, sa_exc.DBAPIError) and (
        "no such table" in text or ("relation" in text and "does not exist" in text)
    )


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn "database not there" driver errors into :class:`StoreUnavailable`."""
    try:
        yield
    except Exception as exc:
        if _schema_missing(exc):
            raise StoreUnavailable(
                "database schema is missing: run `asya gateway migrate` "
                "(or start with ASYA_DB_AUTO_MIGRATE=true)"
            ) from exc
        if _unavailable(exc):
            raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from exc
        raise
