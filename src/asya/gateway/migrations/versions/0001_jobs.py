"""Jobs and their updates.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from asya.gateway.schema import JSONType, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

#: The open-job condition as it was at this revision (0003 adds Cancelled); a migration keeps
#: its own copy so that later schema changes never rewrite history.
OPEN_JOB_0001 = sa.text("status NOT IN ('Succeeded', 'Failed')")


def upgrade() -> None:
    op.create_table(
        "jobs",
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
        sa.Column("timeout_seconds", sa.Float),
        sa.Column("deadline", UTCDateTime),
        sa.Column("progress_percent", sa.Float, nullable=False, server_default="0"),
        sa.Column("current_step", sa.String(255)),
        sa.Column("steps_completed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("total_steps", sa.Integer, nullable=False),
        sa.Column("last_sequence", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_index("ix_jobs_status_created_at", "jobs", ["status", "created_at"])
    op.create_index(
        "ix_jobs_open_deadline",
        "jobs",
        ["deadline"],
        postgresql_where=OPEN_JOB_0001,
        sqlite_where=OPEN_JOB_0001,
    )
    op.create_table(
        "job_updates",
        sa.Column(
            "job_id",
            sa.String(36),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            nullable=False,
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
        sa.PrimaryKeyConstraint("job_id", "sequence", name="pk_job_updates"),
    )


def downgrade() -> None:
    op.drop_table("job_updates")
    op.drop_table("jobs")
