"""Alembic migrations shipped inside the package, applied programmatically.

No ``alembic.ini`` is needed at runtime: :func:`upgrade` builds the Alembic configuration in
code and runs it on a connection the store already opened. On PostgreSQL an advisory lock makes
replicas that start together apply the migrations once.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

_HERE = Path(__file__).resolve().parent
_LOCK_KEY = 0x61737961  # "asya"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    config.attributes["connection"] = connection
    return config


def _upgrade_sync(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    command.upgrade(alembic_config(connection), "head")


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the database to the newest schema (idempotent).

    The store's PostgreSQL engine autocommits; migrations (and the advisory lock that keeps
    replicas from applying them twice) need one real transaction, so this connection asks
    for it.
    """
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="READ COMMITTED")
        async with conn.begin():
            await conn.run_sync(_upgrade_sync)


def _current_sync(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current_sync)
