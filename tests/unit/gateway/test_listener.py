"""The LISTEN connection's DSN, as asyncpg reads it."""

from __future__ import annotations

import pytest

from asya.gateway.listener import asyncpg_dsn


@pytest.mark.parametrize("option", ["sslmode", "ssl"])
def test_an_ssl_mode_in_the_url_reaches_asyncpg_in_its_spelling(option: str) -> None:
    url = f"postgresql://u@h/db?application_name=gw&{option}=disable"
    assert asyncpg_dsn(url) == "postgresql://u@h/db?application_name=gw&sslmode=disable"
    assert asyncpg_dsn("postgres://u@h/db") == "postgresql://u@h/db"
