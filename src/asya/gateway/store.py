"""The job store: jobs and their updates in PostgreSQL or SQLite, through SQLAlchemy Core.

Every change to a job is atomic: an ``UPDATE … RETURNING`` guarded by "not yet terminal" (so
terminal is final, even across replicas) that raises the percent with a ``CASE`` — never
lower — and takes the next per-job sequence number, plus the ``INSERT`` of the update row with
that sequence. The row lock taken by the UPDATE orders concurrent reports of one job, so no
update is lost or reordered. How the writes reach the database differs per dialect and is
chosen once, at construction (:mod:`asya.gateway.writes`): on PostgreSQL both and a ``NOTIFY``
(delivered on commit, in commit order, so every replica's SSE streams see it) are one
precompiled statement; on SQLite they are one transaction, and writes of this process are
serialised and handed to ``on_update`` directly. Reads go through SQLAlchemy.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from asya.gateway import branches, fanin, migrations
from asya.gateway import statements as sql
from asya.gateway.database import (
    DEFAULT_MAX_OVERFLOW,
    DEFAULT_POOL_SIZE,
    StoreUnavailable,
    create_engine,
    is_stale_connection,
    translate_errors,
)
from asya.gateway.driver import StaleConnection
from asya.gateway.models import (
    CANCELLED,
    MSG_CANCELLED,
    MSG_SENT,
    MSG_SUCCEEDED,
    PENDING,
    STATUSES,
    TERMINAL,
    Job,
    JobState,
    JobUpdate,
    failed_message,
    rfc3339,
    utcnow,
)
from asya.gateway.schema import OPEN_JOB, job_updates, jobs
from asya.gateway.statements import NOTIFY_CHANNEL
from asya.gateway.writes import NotifyingWrites, TransactionalWrites, UpdateCallback, Writes

__all__ = ["NOTIFY_CHANNEL", "JobStore", "Outcome", "StoreUnavailable"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    """What a change did: ``job`` is None for an unknown job, ``update`` None when ignored."""

    job: JobState | None
    update: JobUpdate | None


class JobStore:
    """Jobs on one database (migrated at start or by ``asya gateway migrate``)."""

    def __init__(
        self,
        url: str,
        *,
        on_update: UpdateCallback | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        max_overflow: int = DEFAULT_MAX_OVERFLOW,
    ) -> None:
        self.url = url
        self.engine: AsyncEngine = create_engine(
            url, pool_size=pool_size, max_overflow=max_overflow
        )
        self.dialect = self.engine.dialect.name
        # a stale connection is retried on the next one; after an outage all may be stale
        self._attempts = pool_size + max_overflow + 1
        self._writes: Writes = (
            NotifyingWrites(self._run, self.engine.dialect)
            if self.dialect == "postgresql"
            else TransactionalWrites(self._run, on_update)
        )

    @property
    def notifies(self) -> bool:
        """True when updates fan out through PostgreSQL NOTIFY (to every replica)."""
        return self._writes.notifies

    async def migrate(self) -> None:
        with translate_errors():
            await migrations.upgrade(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        async def select_one(conn: AsyncConnection) -> None:
            await conn.execute(sa.text("SELECT 1"))

        await self._run(select_one)

    async def run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``work`` on a pooled connection, for the tables other modules own (:mod:`.mcp_calls`)."""
        return await self._run(work)

    async def _run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``work`` on a pooled connection; again on another while the one it got was stale.

        This replaces a pre-ping round trip on every checkout: a connection the database
        dropped (restart, failover, idle timeout) fails its next statement — normally before
        sending anything, as the driver already saw it close — and is invalidated, so the next
        try runs on another or a fresh connection. A database that is really down fails to
        connect, which is not retried; nor is a statement whose connection broke while it
        ran on the hot path (it may have been applied: the caller gets 503).
        """
        for attempt in range(1, self._attempts + 1):
            try:
                with translate_errors():
                    async with self.engine.connect() as conn:
                        return await work(conn)
            except StoreUnavailable as exc:
                stale = isinstance(exc, StaleConnection) or is_stale_connection(exc.__cause__)
                if attempt == self._attempts or not stale:
                    raise
                logger.info("database connection was stale (%s); retrying", exc.__cause__)
        raise AssertionError("unreachable")

    async def _rows(self, query: sa.Executable) -> list[Row[Any]]:
        async def fetch(conn: AsyncConnection) -> list[Row[Any]]:
            return list((await conn.execute(query)).all())

        return await self._run(fetch)

    # -- reading -------------------------------------------------------------------------

    async def get_job(self, job_id: str) -> Job | None:
        rows = await self._rows(jobs.select().where(jobs.c.id == job_id))
        return _job(rows[0]) if rows else None

    async def list_jobs(
        self,
        *,
        status: str | None = None,
        tool: str | None = None,
        limit: int = 50,
        after: tuple[datetime, str] | None = None,
    ) -> list[Job]:
        """Newest first by (created_at, id), strictly after ``after`` when given."""
        query = list_jobs_query(status=status, tool=tool, limit=limit, after=after)
        return [_job(row) for row in await self._rows(query)]

    async def has_tool(self, tool: str) -> bool:
        """Whether any job was made by ``tool`` (one index probe)."""
        rows = await self._rows(sa.select(jobs.c.id).where(jobs.c.tool == tool).limit(1))
        return bool(rows)

    async def count_by_status(self, since: datetime) -> dict[str, int]:
        """Jobs created at or after ``since``, counted per status: one range of the
        ``(status, created_at)`` index per status, so the cost follows the window, not the table."""
        counts = [
            sa.select(sa.func.count())
            .where(jobs.c.status == status, jobs.c.created_at >= since)
            .scalar_subquery()
            .label(status)
            for status in STATUSES
        ]
        row = (await self._rows(sa.select(*counts)))[0]
        return {status: int(row._mapping[status]) for status in STATUSES}

    async def list_updates(
        self, job_id: str, *, after: int = 0, limit: int | None = None
    ) -> list[JobUpdate]:
        query = (
            job_updates.select()
            .where(job_updates.c.job_id == job_id, job_updates.c.sequence > after)
            .order_by(job_updates.c.sequence)
            .limit(limit)
        )
        return [_update(row) for row in await self._rows(query)]

    async def cancelled_since(self, since: datetime) -> list[tuple[str, datetime]]:
        """Ids of the jobs cancelled at or after ``since``, with when (oldest first)."""
        query = (
            sa.select(jobs.c.id, jobs.c.updated_at)
            .where(jobs.c.status == CANCELLED, jobs.c.updated_at >= since)
            .order_by(jobs.c.updated_at)
        )
        return [(row.id, row.updated_at) for row in await self._rows(query)]

    async def job_ends(self, job_ids: Sequence[str]) -> dict[str, float | None]:
        """For the known jobs among ``job_ids``: when each ended (epoch seconds), None while
        it runs (the payload retention: asya.payloads.retention)."""
        ends: dict[str, float | None] = {}
        for start in range(0, len(job_ids), 500):
            query = sa.select(jobs.c.id, jobs.c.status, jobs.c.updated_at).where(
                jobs.c.id.in_(job_ids[start : start + 500])
            )
            for row in await self._rows(query):
                ended = row.status in TERMINAL
                ends[row.id] = row.updated_at.timestamp() if ended else None
        return ends

    async def expired_jobs(self, now: datetime) -> list[Job]:
        query = jobs.select().where(jobs.c.deadline.is_not(None), jobs.c.deadline <= now, OPEN_JOB)
        return [_job(row) for row in await self._rows(query)]

    # -- writing -------------------------------------------------------------------------

    async def create_job(
        self,
        *,
        job_id: str,
        tool: str,
        steps: list[str],
        metadata: Mapping[str, Any],
        payload: Any,
        timeout_seconds: float | None,
    ) -> Job:
        now = utcnow()
        deadline = now + timedelta(seconds=timeout_seconds) if timeout_seconds else None
        route_metadata = dict(metadata)
        if deadline is not None:
            route_metadata["deadline"] = rfc3339(deadline)
        job = Job(
            id=job_id,
            tool=tool,
            status=PENDING,
            route={"steps": list(steps), "current": 0, "metadata": route_metadata},
            payload=payload,
            result=None,
            error=None,
            message=None,
            timeout_seconds=timeout_seconds,
            deadline=deadline,
            progress_percent=0.0,
            current_step=None,
            steps_completed=0,
            total_steps=len(steps),
            created_at=now,
            updated_at=now,
        )
        values = {
            "id": job.id,
            "tool": job.tool,
            "status": job.status,
            "route_steps": job.route["steps"],
            "route_current": 0,
            "route_metadata": route_metadata,
            "payload": payload,
            "timeout_seconds": timeout_seconds,
            "deadline": deadline,
            "progress_percent": 0.0,
            "steps_completed": 0,
            "total_steps": job.total_steps,
            "last_sequence": 0,
            "created_at": now,
            "updated_at": now,
        }
        await self._writes.insert_job(values)
        return job

    async def mark_running(self, job_id: str) -> Outcome:
        """The first publish succeeded: Running, "Sending message to first actor"."""
        return await self._change(sql.MARK_RUNNING, job_id, {"p_message": MSG_SENT}, MSG_SENT)

    async def record_progress(
        self,
        job_id: str,
        *,
        step: str,
        step_index: int,
        percent: float,
        step_status: str,
        message: str | None,
        branch: list[dict[str, int]] | None = None,
    ) -> Outcome:
        """One step report; the percent only ever rises (decided by the database)."""
        params: dict[str, Any] = {
            "p_percent": percent,
            "p_step": step,
            "p_index": step_index,
            "p_message": message,
        }
        statement = sql.PROGRESS
        if step_status == "completed":
            statement = sql.PROGRESS_COMPLETED
            params["p_done"] = step_index + 1
        return await self._change(
            statement, job_id, params, message, step=step, step_status=step_status, branch=branch
        )

    async def record_branch_progress(
        self, job_id: str, path: fanin.Path, percent: float
    ) -> float | None:
        """Store one branch's percent; the job's percent over its branch tree."""

        async def work(conn: AsyncConnection) -> float | None:
            return await branches.record_progress(conn, self.dialect, job_id, path, percent, now)

        now = utcnow()
        return await self._transaction(work)

    async def finish_branch(
        self, job_id: str, leaf: fanin.Leaf, metadata: Mapping[str, Any] | None = None
    ) -> Outcome:
        """A branch's final report: stored once; ends the job when the whole tree has ended."""
        now = utcnow()

        async def work(
            conn: AsyncConnection,
        ) -> tuple[Mapping[Any, Any] | None, dict[str, Any] | None]:
            return await branches.finish_leaf(conn, self.dialect, job_id, leaf, metadata, now)

        async with self._writes.serialised():
            row, values = await self._transaction(work)
            if row is None:
                return Outcome(None, None)
            state = _state(row)
            if values is None:
                return Outcome(state, None)
            update = JobUpdate(
                job_id=values["job_id"],
                sequence=values["sequence"],
                status=values["status"],
                message=values["message"],
                result=values["result"],
                error=values["error"],
                progress_percent=float(values["progress_percent"]),
                step=values["step"],
                step_status=values["step_status"],
                timestamp=now,
                branch=values["branch"],
            )
            await self._writes.announce(update)
        return Outcome(state, update)

    async def _transaction(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``work`` in one transaction (PostgreSQL connections otherwise autocommit)."""

        async def run(conn: AsyncConnection) -> T:
            if self.dialect == "postgresql":
                conn = await conn.execution_options(isolation_level="READ COMMITTED")
            return await work(conn)

        return await self._run(run)

    async def succeed(
        self, job_id: str, result: Any, metadata: Mapping[str, Any] | None = None
    ) -> Outcome:
        params = {"p_result": result, "p_final_metadata": dict(metadata) if metadata else None}
        return await self._change(sql.SUCCEED, job_id, params, MSG_SUCCEEDED, result=result)

    async def fail(
        self,
        job_id: str,
        error: str,
        metadata: Mapping[str, Any] | None = None,
        error_details: Mapping[str, Any] | None = None,
    ) -> Outcome:
        message = failed_message(error)
        params = {
            "p_error": error,
            "p_error_details": dict(error_details) if error_details is not None else None,
            "p_message": message,
            "p_final_metadata": dict(metadata) if metadata else None,
        }
        return await self._change(sql.FAIL, job_id, params, message, error=error)

    async def cancel(self, job_id: str) -> Outcome:
        """Cancelled, unless already terminal (then ``update`` is None)."""
        params = {"p_message": MSG_CANCELLED}
        return await self._change(sql.CANCEL, job_id, params, MSG_CANCELLED)

    async def _change(
        self,
        statement: sa.Update,
        job_id: str,
        params: dict[str, Any],
        message: str | None,
        *,
        step: str | None = None,
        step_status: str | None = None,
        result: Any = None,
        error: str | None = None,
        branch: list[dict[str, int]] | None = None,
    ) -> Outcome:
        now = utcnow()
        params = {**params, "p_id": job_id, "p_now": now}
        report = {
            "message": message,
            "result": result,
            "error": error,
            "step": step,
            "step_status": step_status,
            "branch": branch,
        }
        async with self._writes.serialised():
            row = await self._writes.change(statement, params, report, now)
            if row is None:
                return Outcome(await self._state(job_id), None)
            state = _state(row)
            update = JobUpdate(
                job_id=job_id,
                sequence=row["last_sequence"],
                status=state.status,
                progress_percent=state.progress_percent,
                timestamp=now,
                **report,
            )
            await self._writes.announce(update)
        return Outcome(state, update)

    async def _state(self, job_id: str) -> JobState | None:
        rows = await self._rows(sa.select(*sql.CHANGE_RETURNING).where(jobs.c.id == job_id))
        return _state(rows[0]._mapping) if rows else None


def list_jobs_query(
    *,
    status: str | None = None,
    tool: str | None = None,
    limit: int = 50,
    after: tuple[datetime, str] | None = None,
) -> sa.Select[Any]:
    """One page of jobs; each filter has an index starting with its column, then
    ``created_at``, so a page reads about ``limit`` rows, not the table."""
    query = jobs.select().order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(jobs.c.status == status)
    if tool is not None:
        query = query.where(jobs.c.tool == tool)
    if after is not None:
        created_at, job_id = after
        query = query.where(
            jobs.c.created_at <= created_at,
            sa.or_(jobs.c.created_at < created_at, jobs.c.id < job_id),
        )
    return query


def _state(row: Mapping[Any, Any]) -> JobState:
    """From a changed row: an asyncpg Record or a SQLAlchemy row mapping."""
    return JobState(
        id=row["id"],
        tool=row["tool"],
        status=row["status"],
        progress_percent=float(row["progress_percent"]),
    )


def _job(row: Row[Any]) -> Job:
    metadata = dict(row.route_metadata or {})
    if row.final_metadata:
        metadata.update(row.final_metadata)
    return Job(
        id=row.id,
        tool=row.tool,
        status=row.status,
        route={"steps": list(row.route_steps), "current": row.route_current, "metadata": metadata},
        payload=row.payload,
        result=row.result,
        error=row.error,
        message=row.message,
        timeout_seconds=None if row.timeout_seconds is None else float(row.timeout_seconds),
        deadline=row.deadline,
        progress_percent=float(row.progress_percent),
        current_step=row.current_step,
        steps_completed=row.steps_completed,
        total_steps=row.total_steps,
        created_at=row.created_at,
        updated_at=row.updated_at,
        error_details=row.error_details,
    )


def _update(row: Row[Any]) -> JobUpdate:
    return JobUpdate(
        job_id=row.job_id,
        sequence=row.sequence,
        status=row.status,
        message=row.message,
        result=row.result,
        error=row.error,
        progress_percent=row.progress_percent,
        step=row.step,
        step_status=row.step_status,
        timestamp=row.timestamp,
        branch=row.branch,
    )
