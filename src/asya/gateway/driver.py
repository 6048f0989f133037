"""PostgreSQL's hot path: Core statements compiled once, executed on the pooled asyncpg connection.

Creating a job costs two statements (the Pending INSERT, then the Running change after the
publish). Through SQLAlchemy's execution layer each one spent several times the driver's own
CPU time on cache-key lookups, parameter and result processing; the gateway is CPU-bound, so
that was its job rate. The statements are still written once in SQLAlchemy Core
(:mod:`asya.gateway.statements`): this module compiles each for the engine's dialect once
(SQL text, the order of its ``$n`` parameters, the constants baked into it, and SQLAlchemy's
own bind processors, so JSON and timestamps are encoded exactly as the engine would) and runs
it with ``fetchrow`` on the connection SQLAlchemy's pool hands out (asyncpg keeps it prepared).

Driver errors are translated here the way SQLAlchemy would: a connection the database dropped
is invalidated and reported as :class:`StaleConnection` (the store retries on another one) when
the statement cannot have run, as plain :class:`StoreUnavailable` (503) when it may have.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from asya.gateway.database import StoreUnavailable, schema_missing_error

#: The connection was gone before the statement ran: safe to run it on another one.
_STALE: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.InterfaceError,  # "connection is closed" (the driver saw it close)
    asyncpg.exceptions.AdminShutdownError,  # 57P01: the backend was terminated while idle
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InternalClientError,  # left mid-operation by an earlier failure
)
#: The connection broke while the statement ran: it may have been applied, so not retried.
_BROKEN: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,  # class 08, e.g. closed in mid-operation
    OSError,  # the socket broke (TimeoutError included)
)


class StaleConnection(StoreUnavailable):
    """The pooled connection had been dropped by the database; another one may work."""


@dataclass(frozen=True)
class DriverStatement:
    """One Core statement as asyncpg runs it."""

    sql: str
    names: tuple[str, ...]
    constants: Mapping[str, Any]
    processors: tuple[Callable[[Any], Any] | None, ...]

    @classmethod
    def compile(
        cls, statement: sa.Executable, dialect: Dialect, column_keys: Sequence[str] | None = None
    ) -> DriverStatement:
        compiled = statement.compile(  # type: ignore[attr-defined]
            dialect=dialect, column_keys=list(column_keys) if column_keys else None
        )
        names = tuple(compiled.positiontup or ())
        binds = {name: compiled.binds[name] for name in names}
        constants = {name: bind.value for name, bind in binds.items() if not bind.required}
        processors = tuple(
            bind.type.dialect_impl(dialect).bind_processor(dialect) for bind in binds.values()
        )
        return cls(str(compiled), names, constants, processors)

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        """The positional arguments for ``params`` (a missing name raises KeyError)."""
        values = []
        for name, process in zip(self.names, self.processors, strict=True):
            value = params[name] if name in params else self.constants[name]
            values.append(value if process is None else process(value))
        return values

    async def fetchrow(self, conn: AsyncConnection, params: Mapping[str, Any]) -> Any:
        """Run on ``conn``'s asyncpg connection; the first row (an asyncpg Record) or None."""
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None  # a checked-out connection has one
        try:
            return await driver.fetchrow(self.sql, *self.arguments(params))
        except asyncpg.exceptions.DataError:
            raise  # an argument the driver cannot encode (a bug): nothing to retry
        except _STALE as exc:
            await conn.invalidate(exc)
            raise StaleConnection(f"database unavailable: {type(exc).__name__}") from exc
        except _BROKEN as exc:
            await conn.invalidate(exc)
            raise StoreUnavailable(f"database unavailable: {type(exc).__name__}") from exc
        except asyncpg.exceptions.UndefinedTableError as exc:
            raise schema_missing_error() from exc
        except asyncpg.exceptions.PostgresError:
            raise  # the statement failed, the connection is fine
        except BaseException as exc:  # cancelled mid-statement, or a driver fault
            await conn.invalidate(exc)  # never hand a connection in an unknown state back
            raise
