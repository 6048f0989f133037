"""Table definitions shared by the store and the migrations' autogenerate check.

One schema for PostgreSQL (JSONB, timestamptz) and SQLite (JSON text, UTC timestamps stored
naive): the store's SQL is written once in SQLAlchemy Core against these tables.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Always hands back aware UTC datetimes; SQLite keeps them naive in UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - drivers return datetimes
            value = datetime.fromisoformat(str(value))
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

#: Jobs not yet terminal. Literal SQL (not bound parameters) so the database can match it to the
#: partial index the deadline sweeper uses: its cost stays with the open jobs, not all history.
OPEN_JOB = sa.text("status NOT IN ('Succeeded', 'Failed', 'Cancelled')")

metadata = sa.MetaData()

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tool", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("route_steps", JSONType, nullable=False),
    sa.Column("route_current", sa.Integer, nullable=False, server_default="0"),
    sa.Column("route_metadata", JSONType, nullable=False),
    sa.Column("payload", JSONType),
    sa.Column("result", JSONType),
    sa.Column("error", sa.Text),
    sa.Column("message", sa.Text),
    sa.Column("final_metadata", JSONType),
    sa.Column("error_details", JSONType),
    sa.Column("timeout_seconds", sa.Float),
    sa.Column("deadline", UTCDateTime),
    sa.Column("progress_percent", sa.Float, nullable=False, server_default="0"),
    sa.Column("current_step", sa.String(255)),
    sa.Column("steps_completed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("total_steps", sa.Integer, nullable=False),
    sa.Column("last_sequence", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_jobs_created_at", "created_at"),
    sa.Index("ix_jobs_status_created_at", "status", "created_at"),
    sa.Index("ix_jobs_tool_created_at", "tool", "created_at"),
    sa.Index(
        "ix_jobs_open_deadline",
        "deadline",
        postgresql_where=OPEN_JOB,
        sqlite_where=OPEN_JOB,
    ),
)

job_updates = sa.Table(
    "job_updates",
    metadata,
    sa.Column(
        "job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("message", sa.Text),
    sa.Column("result", JSONType),
    sa.Column("error", sa.Text),
    sa.Column("progress_percent", sa.Float),
    sa.Column("step", sa.String(255)),
    sa.Column("step_status", sa.String(16)),
    sa.Column("timestamp", UTCDateTime, nullable=False),
    sa.Column("branch", JSONType),
    sa.PrimaryKeyConstraint("job_id", "sequence", name="pk_job_updates"),
)

#: One row per fan-out branch of a job (docs/reference/jobs.md): its latest progress while it runs,
#: its outcome once its final report arrives. ``path`` is the canonical key ``"i/n.i/n"``.
job_branches = sa.Table(
    "job_branches",
    metadata,
    sa.Column(
        "job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("path", sa.String(1024), nullable=False),
    sa.Column("branch", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("progress_percent", sa.Float, nullable=False, server_default="0"),
    sa.Column("result", JSONType),
    sa.Column("error", sa.Text),
    sa.Column("error_details", JSONType),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint("job_id", "path", name="pk_job_branches"),
)

#: The wait-mode MCP calls in flight on any replica, so a ``notifications/cancelled`` that reaches
#: another replica finds the job (docs/reference/gateway-api.md#mcp-cancellation). ``call_key`` is a
#: digest of what identifies the call (:func:`asya.gateway.mcp_calls.call_key`); ``cancelled`` is
#: set by the replica that received the notification, so the one holding the call leaves it
#: unanswered. A row goes when its call ends, or with its job.
mcp_waiting_calls = sa.Table(
    "mcp_waiting_calls",
    metadata,
    sa.Column("call_key", sa.String(64), nullable=False),
    sa.Column(
        "job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("cancelled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.PrimaryKeyConstraint("call_key", "job_id", name="pk_mcp_waiting_calls"),
)
