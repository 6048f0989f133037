"""Cancelled is a terminal status: the open-deadline index leaves those jobs out too.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_INDEX = "ix_jobs_open_deadline"
_OPEN_BEFORE = sa.text("status NOT IN ('Succeeded', 'Failed')")
_OPEN_NOW = sa.text("status NOT IN ('Succeeded', 'Failed', 'Cancelled')")


def _recreate(where: sa.TextClause) -> None:
    op.drop_index(_INDEX, table_name="jobs")
    op.create_index(_INDEX, "jobs", ["deadline"], postgresql_where=where, sqlite_where=where)


def upgrade() -> None:
    _recreate(_OPEN_NOW)


def downgrade() -> None:
    _recreate(_OPEN_BEFORE)
