"""Alembic environment: runs on the connection handed over by ``asya.gateway.migrations``."""

from __future__ import annotations

from alembic import context

from asya.gateway.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `asya gateway migrate` (it supplies the connection)")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
