"""PostgreSQL's hot path: Core statements compiled once for asyncpg."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from asya.gateway import statements as sql
from asya.gateway.database import create_engine
from asya.gateway.driver import DriverStatement


def test_compiled_statements_encode_json_and_keep_their_constants() -> None:
    engine = create_engine("postgresql://postgres@127.0.0.1/never-connected")
    insert = DriverStatement.compile(sql.INSERT_JOB, engine.dialect, sql.INSERT_JOB_COLUMNS)
    assert insert.sql.startswith("INSERT INTO jobs (")
    assert insert.names == sql.INSERT_JOB_COLUMNS
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    values: dict[str, Any] = {name: None for name in sql.INSERT_JOB_COLUMNS}
    values |= {"id": "j1", "route_steps": ["a", "b"], "payload": {"x": 1}, "created_at": now}
    arguments = dict(zip(insert.names, insert.arguments(values), strict=True))
    assert orjson.loads(arguments["route_steps"]) == ["a", "b"]
    assert orjson.loads(arguments["payload"]) == {"x": 1}
    assert arguments["created_at"] == now
    assert arguments["id"] == "j1"

    running = DriverStatement.compile(sql.NOTIFYING[sql.MARK_RUNNING], engine.dialect)
    assert running.sql.count("$") >= len(running.names)
    assert running.constants  # the status, the channel name, the NOTIFY limit …
    assert "Running" in running.constants.values()
    with pytest.raises(KeyError):
        running.arguments({})  # a missing parameter is a programming error, caught at once
