"""Without chromium the browser tests skip, saying how to install it; under CI=true they fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.console import conftest


def test_missing_chromium_skips_with_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        conftest._missing("chromium")


def test_missing_chromium_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: browser tests need chromium"):
        conftest._missing("chromium")


def test_the_chromium_path_can_be_overridden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "chromium"
    fake.write_text("")
    monkeypatch.setenv("ASYA_TEST_CHROMIUM", str(fake))
    assert conftest.chromium_path() == str(fake)
