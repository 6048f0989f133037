"""The shipped Alembic migrations build exactly the schema the store is written against."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from asya.gateway.migrations import current_revision
from asya.gateway.schema import metadata
from asya.gateway.store import JobStore


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": False})
    return list(compare_metadata(context, metadata))


async def test_migrations_match_the_schema_and_can_run_twice(database_url: str) -> None:
    store = JobStore(database_url)
    try:
        await store.migrate()
        await store.migrate()
        assert await current_revision(store.engine) == "0004"
        async with store.engine.connect() as conn:
            differences = await conn.run_sync(_differences)
        assert differences == []
    finally:
        await store.close()
