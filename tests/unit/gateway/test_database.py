"""The engine's URL handling."""

from __future__ import annotations

import pytest

from asya.gateway.database import ssl_mode


@pytest.mark.parametrize("option", ["sslmode", "ssl"])
def test_an_ssl_mode_in_the_url_is_taken_out_for_the_engine_to_pass_on(option: str) -> None:
    url = f"postgresql://u@h/db?application_name=gw&{option}=disable"
    assert ssl_mode(url) == ("postgresql://u@h/db?application_name=gw", "disable")
    assert ssl_mode("postgresql://u@h/db") == ("postgresql://u@h/db", None)
