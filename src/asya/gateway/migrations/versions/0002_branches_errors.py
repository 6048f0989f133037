"""Fan-out branches of a job, and the structured cause of a failure.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from asya.gateway.schema import JSONType, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("error_details", JSONType))
    op.add_column("job_updates", sa.Column("branch", JSONType))
    op.create_index("ix_jobs_tool_created_at", "jobs", ["tool", "created_at"])
    op.create_table(
        "job_branches",
        sa.Column(
            "job_id",
            sa.String(36),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            nullable=False,
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


def downgrade() -> None:
    op.drop_table("job_branches")
    with op.batch_alter_table("job_updates") as batch:
        batch.drop_column("branch")
    op.drop_index("ix_jobs_tool_created_at", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("error_details")
