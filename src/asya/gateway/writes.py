"""How the job store writes, one strategy per database, chosen once when the store is built.

PostgreSQL writes each change as one autocommitted statement (UPDATE + INSERT + NOTIFY,
:mod:`asya.gateway.statements`) run precompiled on the pooled asyncpg connection
(:mod:`asya.gateway.driver`); the NOTIFY fans the update out to every replica, so nothing is
announced in process. SQLite runs the UPDATE and the update row's INSERT in one transaction;
writes of this process are serialised by a lock (SQLite allows one writer anyway, and the lock
keeps the in-process fan-out in order) and each update is handed to ``on_update`` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from asya.gateway import statements as sql
from asya.gateway.driver import DriverStatement
from asya.gateway.models import JobUpdate, rfc3339

T = TypeVar("T")

#: Runs the work on a pooled connection, retrying on another while the one it got was stale.
Runner = Callable[[Callable[[AsyncConnection], Awaitable[T]]], Awaitable[T]]
UpdateCallback = Callable[[JobUpdate], Awaitable[None]]


class Writes(Protocol):
    """The dialect-specific half of the store's writes."""

    #: True when updates fan out through PostgreSQL NOTIFY (to every replica).
    notifies: bool

    async def insert_job(self, values: Mapping[str, Any]) -> None:
        """Insert the Pending job row."""

    async def change(
        self, statement: sa.Update, params: dict[str, Any], report: dict[str, Any], now: datetime
    ) -> Mapping[Any, Any] | None:
        """Apply one change and record its update; the changed row, or None when ignored."""

    def serialised(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Held around a change and its announcement."""

    async def announce(self, update: JobUpdate) -> None:
        """Tell this process's listeners about an update the database did not fan out."""


class NotifyingWrites:
    """PostgreSQL: every write one autocommitted statement, announced by NOTIFY on commit."""

    notifies = True

    def __init__(self, run: Runner[Any], dialect: Dialect) -> None:
        self._run = run
        self._insert_job = DriverStatement.compile(sql.INSERT_JOB, dialect, sql.INSERT_JOB_COLUMNS)
        self._changes = {
            change: DriverStatement.compile(notifying, dialect)
            for change, notifying in sql.NOTIFYING.items()
        }

    async def insert_job(self, values: Mapping[str, Any]) -> None:
        async def insert(conn: AsyncConnection) -> None:
            await self._insert_job.fetchrow(conn, values)

        await self._run(insert)

    async def change(
        self, statement: sa.Update, params: dict[str, Any], report: dict[str, Any], now: datetime
    ) -> Mapping[Any, Any] | None:
        driver_statement = self._changes[statement]
        values = {f"u_{name}": value for name, value in report.items()}
        arguments = {**params, **values, "u_timestamp": rfc3339(now)}

        async def change(conn: AsyncConnection) -> Mapping[Any, Any] | None:
            row: Mapping[Any, Any] | None = await driver_statement.fetchrow(conn, arguments)
            return row

        result: Mapping[Any, Any] | None = await self._run(change)
        return result

    def serialised(self) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def announce(self, update: JobUpdate) -> None:
        """Nothing to do: the NOTIFY of the same statement reaches every replica."""


class TransactionalWrites:
    """SQLite: each write one transaction, serialised in process and announced directly."""

    notifies = False

    def __init__(self, run: Runner[Any], on_update: UpdateCallback | None) -> None:
        self._run = run
        self._on_update = on_update
        self._lock = asyncio.Lock()

    async def insert_job(self, values: Mapping[str, Any]) -> None:
        async def insert(conn: AsyncConnection) -> None:
            async with conn.begin():
                await conn.execute(sql.INSERT_JOB, values)

        await self._run(insert)

    async def change(
        self, statement: sa.Update, params: dict[str, Any], report: dict[str, Any], now: datetime
    ) -> Mapping[Any, Any] | None:
        async def change(conn: AsyncConnection) -> Mapping[Any, Any] | None:
            async with conn.begin():
                row = (await conn.execute(statement, params)).first()
                if row is None:
                    return None
                await conn.execute(
                    sql.INSERT_UPDATE,
                    {
                        "job_id": row.id,
                        "sequence": row.last_sequence,
                        "status": row.status,
                        "progress_percent": row.progress_percent,
                        "timestamp": now,
                        **report,
                    },
                )
                return row._mapping

        result: Mapping[Any, Any] | None = await self._run(change)
        return result

    def serialised(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._lock

    async def announce(self, update: JobUpdate) -> None:
        if self._on_update is not None:
            await self._on_update(update)
