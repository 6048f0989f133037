"""Database connections for the job store: URLs, engines, and what counts as "unavailable".

``postgres://``/``postgresql://`` URLs use asyncpg, ``sqlite:///path`` aiosqlite. Driver errors
meaning "the database is not there" become :class:`StoreUnavailable` (answered 503) so the rest
of the gateway never sees a driver exception.

The PostgreSQL pool has a fixed size (``ASYA_DATABASE_POOL_SIZE``, no overflow by default):
a request beyond it waits a moment for a connection, which costs far less than the connect
(and SSL negotiation) and close of an overflow connection per burst. It runs in autocommit:
every statement the store sends is atomic on its own, so BEGIN/COMMIT/ROLLBACK round trips
would be pure cost. It does not pre-ping (one more round trip per checkout); instead the store
retries a statement that failed on a connection the database had dropped
(:func:`is_stale_connection`) on another one, so the gateway recovers by itself when the
database returns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from asya.errors import TransientError


class StoreUnavailable(TransientError):
    """The database did not answer (or has no schema); callers answer 503."""


class DatabaseMissing(StoreUnavailable):
    """The PostgreSQL server answers but has no database of that name."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.name = parts.path.lstrip("/") or "postgres"
        where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
        super().__init__(
            f"database {self.name!r} does not exist on {where}: create it "
            f"(createdb -h {parts.hostname or 'localhost'} {self.name}) "
            "or point ASYA_DATABASE_URL at one that exists"
        )


def is_database_missing(exc: BaseException) -> bool:
    """True for PostgreSQL's "database … does not exist" (SQLSTATE 3D000), however wrapped."""
    current: BaseException | None = exc
    while current is not None:
        if getattr(current, "sqlstate", None) == "3D000":
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


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


def ssl_mode(url: str) -> tuple[str, str | None]:
    """``url`` without its ``sslmode``/``ssl`` query option, and that option's value.

    libpq spells it ``sslmode`` (which asyncpg's DSN parser reads but SQLAlchemy would pass on
    as an unknown keyword), SQLAlchemy's asyncpg dialect ``ssl``: either is accepted and handed
    to each consumer in the form it understands.
    """
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    modes = [value for key, value in query if key in ("sslmode", "ssl")]
    rest = [(key, value) for key, value in query if key not in ("sslmode", "ssl")]
    return parts._replace(query=urlencode(rest)).geturl(), (modes[-1] if modes else None)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _loads(value: Any) -> Any:
    # SQLite's JSON columns have numeric affinity: a stored scalar may come back already a number
    return orjson.loads(value) if isinstance(value, str | bytes) else value


DEFAULT_POOL_SIZE = 20
DEFAULT_MAX_OVERFLOW = 0


def create_engine(
    url: str, *, pool_size: int = DEFAULT_POOL_SIZE, max_overflow: int = DEFAULT_MAX_OVERFLOW
) -> AsyncEngine:
    """A pooled engine using orjson; on PostgreSQL autocommitting, without pre-ping."""
    target = sqlalchemy_url(url)
    codec = {"json_serializer": _dumps, "json_deserializer": _loads}
    if target.startswith("postgresql"):
        target, mode = ssl_mode(target)
        connect_args: dict[str, Any] = {"timeout": 5, "command_timeout": 30}
        if mode is not None:
            connect_args["ssl"] = mode
        return create_async_engine(
            target,
            **codec,
            isolation_level="AUTOCOMMIT",
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=10,
            connect_args=connect_args,
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


def is_stale_connection(exc: BaseException | None) -> bool:
    """True when ``exc`` came from a pooled connection the database had already dropped.

    SQLAlchemy flags such errors (``connection_invalidated``) and invalidates the pool, so one
    more try runs on a fresh connection; a database that is really down fails that try too.
    """
    return isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated


def _schema_missing(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", exc)).lower()
    return isinstance(exc, sa_exc.DBAPIError) and (
        "no such table" in text or ("relation" in text and "does not exist" in text)
    )


def schema_missing_error() -> StoreUnavailable:
    return StoreUnavailable(
        "database schema is missing: run `asya gateway migrate` "
        "(or start with ASYA_DB_AUTO_MIGRATE=true)"
    )


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn "database not there" driver errors into :class:`StoreUnavailable`."""
    try:
        yield
    except Exception as exc:
        if _schema_missing(exc):
            raise schema_missing_error() from exc
        if _unavailable(exc):
            raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from exc
        raise
