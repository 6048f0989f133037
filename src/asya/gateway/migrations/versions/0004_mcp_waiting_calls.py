"""The wait-mode MCP calls in flight, so any replica can cancel one's job.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mcp_waiting_calls",
        sa.Column("call_key", sa.String(64), nullable=False),
        sa.Column(
            "job_id",
            sa.String(36),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("cancelled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("call_key", "job_id", name="pk_mcp_waiting_calls"),
    )


def downgrade() -> None:
    op.drop_table("mcp_waiting_calls")
