"""The store's write statements, built once with bound parameters.

Progress reports are the gateway's hottest path; building SQLAlchemy statements per call (and
their cache keys) costs more CPU than the database round trips, so each shape is built here
once and executed with a parameter dict. Parameter names start with ``p_``/``u_`` (SQLAlchemy
refuses bind names equal to the columns a statement sets).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from asya.gateway.models import CANCELLED, FAILED, MSG_SUCCEEDED, PENDING, RUNNING, SUCCEEDED
from asya.gateway.schema import OPEN_JOB, JSONType, UTCDateTime, job_updates, jobs

NOTIFY_CHANNEL = "asya_job_updates"
NOTIFY_LIMIT = 7000  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more

_P = sa.bindparam
#: What a change hands back: enough to answer and count, without decoding payload or result.
CHANGE_RETURNING = (
    jobs.c.id,
    jobs.c.tool,
    jobs.c.status,
    jobs.c.progress_percent,
    jobs.c.last_sequence,
)


def _change(values: dict[str, Any]) -> sa.Update:
    """``UPDATE jobs … WHERE id = :p_id AND <not terminal>`` taking the next sequence."""
    return (
        jobs.update()
        .where(jobs.c.id == _P("p_id", type_=sa.String()), OPEN_JOB)
        .values(
            **values,
            last_sequence=jobs.c.last_sequence + 1,
            updated_at=_P("p_now", type_=UTCDateTime()),
        )
        .returning(*CHANGE_RETURNING)
    )


def _not_lower(column: sa.ColumnElement[Any], name: str, kind: sa.types.TypeEngine[Any]) -> Any:
    """``column`` raised to ``:name`` but never lowered (concurrent reports meet here)."""
    return sa.case((column > _P(name, type_=kind), column), else_=_P(name, type_=kind))


_MESSAGE = _P("p_message", type_=sa.Text())
_FINAL_METADATA = _P("p_final_metadata", type_=JSONType)

MARK_RUNNING = _change({"status": RUNNING, "message": _MESSAGE})

_PROGRESS_VALUES: dict[str, Any] = {
    "status": sa.case((jobs.c.status == PENDING, RUNNING), else_=jobs.c.status),
    "progress_percent": _not_lower(jobs.c.progress_percent, "p_percent", sa.Float()),
    "current_step": _P("p_step", type_=sa.String()),
    "route_current": _not_lower(jobs.c.route_current, "p_index", sa.Integer()),
    "message": sa.func.coalesce(_MESSAGE, jobs.c.message),
}
PROGRESS = _change(_PROGRESS_VALUES)
PROGRESS_COMPLETED = _change(
    {
        **_PROGRESS_VALUES,
        "steps_completed": _not_lower(jobs.c.steps_completed, "p_done", sa.Integer()),
    }
)

SUCCEED = _change(
    {
        "status": SUCCEEDED,
        "result": _P("p_result", type_=JSONType),
        "progress_percent": 100.0,
        "message": MSG_SUCCEEDED,
        "final_metadata": _FINAL_METADATA,
    }
)
FAIL = _change(
    {
        "status": FAILED,
        "error": _P("p_error", type_=sa.Text()),
        "error_details": _P("p_error_details", type_=JSONType),
        "message": _MESSAGE,
        "final_metadata": _FINAL_METADATA,
    }
)
CANCEL = _change({"status": CANCELLED, "message": _MESSAGE})

INSERT_JOB = jobs.insert()
#: The columns a new job sets (the rest take their server defaults).
INSERT_JOB_COLUMNS = (
    "id",
    "tool",
    "status",
    "route_steps",
    "route_current",
    "route_metadata",
    "payload",
    "timeout_seconds",
    "deadline",
    "progress_percent",
    "steps_completed",
    "total_steps",
    "last_sequence",
    "created_at",
    "updated_at",
)
INSERT_UPDATE = job_updates.insert()


def _text(name: str) -> sa.Cast[str]:
    return sa.cast(_P(name, type_=sa.Text()), sa.Text())


def notifying(change: sa.Update) -> sa.Select[Any]:
    """PostgreSQL: ``change``, the INSERT of its update row and the NOTIFY in one statement.

    One statement is atomic on its own, so it runs without BEGIN/COMMIT: a progress report
    costs one round trip instead of four. The NOTIFY payload is built by the database from
    the changed row (sequence, status, percent) and the report (``u_*`` parameters); one too
    large for NOTIFY is replaced by a marker the listener resolves from the table.
    """
    changed = change.cte("changed")
    inserted = (
        job_updates.insert()
        .from_select(
            [
                "job_id",
                "sequence",
                "status",
                "message",
                "result",
                "error",
                "progress_percent",
                "step",
                "step_status",
                "timestamp",
                "branch",
            ],
            sa.select(
                changed.c.id,
                changed.c.last_sequence,
                changed.c.status,
                _P("u_message", type_=sa.Text()),
                _P("u_result", type_=JSONType),
                _P("u_error", type_=sa.Text()),
                changed.c.progress_percent,
                _P("u_step", type_=sa.String()),
                _P("u_step_status", type_=sa.String()),
                _P("p_now", type_=UTCDateTime()),
                _P("u_branch", type_=JSONType),
            ),
        )
        .returning(job_updates.c.sequence)
        .cte("inserted")
    )
    wire = sa.cast(
        sa.func.json_build_object(
            "job_id",
            changed.c.id,
            "sequence",
            changed.c.last_sequence,
            "status",
            changed.c.status,
            "message",
            _text("u_message"),
            "result",
            sa.cast(_P("u_result", type_=JSONType), JSONB()),
            "error",
            _text("u_error"),
            "progress_percent",
            changed.c.progress_percent,
            "step",
            _text("u_step"),
            "step_status",
            _text("u_step_status"),
            "timestamp",
            _text("u_timestamp"),
            "branch",
            sa.cast(_P("u_branch", type_=JSONType), JSONB()),
        ),
        sa.Text(),
    )
    marker = sa.cast(
        sa.func.json_build_object(
            "job_id", changed.c.id, "sequence", changed.c.last_sequence, "fetch", sa.true()
        ),
        sa.Text(),
    )
    payload = sa.case((sa.func.octet_length(wire) > NOTIFY_LIMIT, marker), else_=wire)
    return sa.select(
        *(changed.c[column.name] for column in CHANGE_RETURNING),
        sa.func.pg_notify(NOTIFY_CHANNEL, payload).label("notified"),
    ).where(changed.c.last_sequence == inserted.c.sequence)


#: The PostgreSQL one-statement form of each change.
NOTIFYING: dict[sa.Update, sa.Select[Any]] = {
    change: notifying(change)
    for change in (MARK_RUNNING, PROGRESS, PROGRESS_COMPLETED, SUCCEED, FAIL, CANCEL)
}
