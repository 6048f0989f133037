"""Fan-out branches in the database: their progress and their final reports
(docs/reference/jobs.md#fan-out).

A leaf's final report is one transaction: the job row is locked (``SELECT … FOR UPDATE`` on
PostgreSQL; SQLite has one writer, and this process's writes are serialised by the store), the
leaf is stored idempotently in ``job_branches``, every stored leaf is read back and
:mod:`asya.gateway.fanin` decides whether the tree has ended. The job then becomes terminal or
its percent rises, and the update row (with the branch) is written; on PostgreSQL a ``NOTIFY``
marker, delivered on commit, lets every replica's listener read that update from the table.
All state lives in the database, so replicas and restarts lose nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from asya.gateway import fanin
from asya.gateway.models import FAILED, MSG_SUCCEEDED, SUCCEEDED, TERMINAL, failed_message
from asya.gateway.schema import job_branches, job_updates, jobs
from asya.gateway.statements import NOTIFY_CHANNEL

RUNNING_BRANCH = "running"


def _insert(dialect: str) -> Any:
    module: Any = postgresql if dialect == "postgresql" else sqlite
    return module.insert(job_branches)


async def record_progress(
    conn: AsyncConnection,
    dialect: str,
    job_id: str,
    path: fanin.Path,
    percent: float,
    now: datetime,
) -> float | None:
    """Store a running branch's percent (never lower); the job's tree percent, None for an
    unknown job. A branch that has ended keeps its outcome."""
    async with conn.begin():
        insert = _insert(dialect).values(
            job_id=job_id,
            path=fanin.path_key(path),
            branch=fanin.branch_json(path),
            status=RUNNING_BRANCH,
            progress_percent=percent,
            updated_at=now,
        )
        existing = job_branches.c.progress_percent
        await conn.execute(
            insert.on_conflict_do_update(
                index_elements=[job_branches.c.job_id, job_branches.c.path],
                set_={
                    "progress_percent": sa.case(
                        (existing > insert.excluded.progress_percent, existing),
                        else_=insert.excluded.progress_percent,
                    ),
                    "updated_at": now,
                },
                where=job_branches.c.status == RUNNING_BRANCH,
            )
        )
        ended, running = await _branches(conn, job_id)
    return fanin.tree_percent(ended, running)


async def _branches(
    conn: AsyncConnection, job_id: str
) -> tuple[list[fanin.Path], dict[fanin.Path, float]]:
    rows = await conn.execute(
        sa.select(
            job_branches.c.path, job_branches.c.status, job_branches.c.progress_percent
        ).where(job_branches.c.job_id == job_id)
    )
    ended: list[fanin.Path] = []
    running: dict[fanin.Path, float] = {}
    for row in rows:
        path = _path(row.path)
        if row.status == RUNNING_BRANCH:
            running[path] = float(row.progress_percent)
        else:
            ended.append(path)
    return ended, running


def _path(key: str) -> fanin.Path:
    levels = []
    for level in key.split("."):
        index, count = level.split("/")
        levels.append((int(index), int(count)))
    return tuple(levels)


async def _leaves(conn: AsyncConnection, job_id: str) -> list[fanin.Leaf]:
    rows = await conn.execute(
        sa.select(
            job_branches.c.path,
            job_branches.c.status,
            job_branches.c.result,
            job_branches.c.error,
            job_branches.c.error_details,
        ).where(job_branches.c.job_id == job_id, job_branches.c.status != RUNNING_BRANCH)
    )
    return [
        fanin.Leaf(
            path=_path(row.path),
            succeeded=row.status == "succeeded",
            result=row.result,
            error=row.error,
            error_details=row.error_details,
        )
        for row in rows
    ]


async def finish_leaf(
    conn: AsyncConnection,
    dialect: str,
    job_id: str,
    leaf: fanin.Leaf,
    metadata: Mapping[str, Any] | None,
    now: datetime,
) -> tuple[Mapping[Any, Any] | None, dict[str, Any] | None]:
    """Apply one leaf's final report: ``(job row, update)``; the update is None when the
    report changed nothing (repeated, or the job is already terminal), the row None for an
    unknown job."""
    async with conn.begin():
        job = (
            await conn.execute(
                sa.select(jobs.c.id, jobs.c.tool, jobs.c.status, jobs.c.progress_percent)
                .where(jobs.c.id == job_id)
                .with_for_update()
            )
        ).first()
        if job is None:
            return None, None
        if job.status in TERMINAL:
            return job._mapping, None
        insert = _insert(dialect).values(
            job_id=job_id,
            path=fanin.path_key(leaf.path),
            branch=fanin.branch_json(leaf.path),
            status="succeeded" if leaf.succeeded else "failed",
            progress_percent=100.0,
            result=leaf.result,
            error=leaf.error,
            error_details=dict(leaf.error_details) if leaf.error_details else None,
            updated_at=now,
        )
        stored = await conn.execute(
            insert.on_conflict_do_update(
                index_elements=[job_branches.c.job_id, job_branches.c.path],
                set_={
                    column: insert.excluded[column]
                    for column in (
                        "status",
                        "progress_percent",
                        "result",
                        "error",
                        "error_details",
                        "updated_at",
                    )
                },
                where=job_branches.c.status == RUNNING_BRANCH,
            ).returning(job_branches.c.path)
        )
        if stored.first() is None:  # this leaf had already ended
            return job._mapping, None
        leaves = await _leaves(conn, job_id)
        decided = fanin.outcome(leaves)
        label = fanin.branch_label(leaf.path)
        ended_text = f"({len(leaves)} of {fanin.known_leaf_count(x.path for x in leaves)} ended)"
        values: dict[str, Any]
        report: dict[str, Any]
        if decided is None:
            ended, running = await _branches(conn, job_id)
            percent = max(float(job.progress_percent), fanin.tree_percent(ended, running))
            outcome_text = "succeeded" if leaf.succeeded else f"failed: {leaf.error}"
            message = f"Branch {label} {outcome_text} {ended_text}"
            values = {"progress_percent": percent, "message": message}
            report = {"message": message}
        elif decided.succeeded:
            values = {
                "status": SUCCEEDED,
                "result": decided.result,
                "progress_percent": 100.0,
                "message": MSG_SUCCEEDED,
            }
            report = {"message": MSG_SUCCEEDED, "result": decided.result}
        else:
            message = failed_message(decided.error or "")
            values = {
                "status": FAILED,
                "result": decided.result,
                "error": decided.error,
                "error_details": decided.error_details,
                "message": message,
            }
            report = {"message": message, "error": decided.error}
        if metadata:
            values["final_metadata"] = dict(metadata)
        changed = (
            await conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(**values, last_sequence=jobs.c.last_sequence + 1, updated_at=now)
                .returning(
                    jobs.c.id,
                    jobs.c.tool,
                    jobs.c.status,
                    jobs.c.progress_percent,
                    jobs.c.last_sequence,
                )
            )
        ).one()
        update = {
            "job_id": job_id,
            "sequence": changed.last_sequence,
            "status": changed.status,
            "progress_percent": changed.progress_percent,
            "step": leaf.step if not leaf.succeeded else None,
            "step_status": None,
            "timestamp": now,
            "branch": fanin.branch_json(leaf.path),
            "result": None,
            "error": None,
            **report,
        }
        await conn.execute(job_updates.insert(), update)
        if dialect == "postgresql":
            marker = {"job_id": job_id, "sequence": changed.last_sequence, "fetch": True}
            await conn.execute(
                sa.select(sa.func.pg_notify(NOTIFY_CHANNEL, orjson.dumps(marker).decode()))
            )
        return changed._mapping, update
