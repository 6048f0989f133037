"""How ``asya up`` reads a replica's sidecar settings (the same way the sidecar reads them)."""

from __future__ import annotations

import pytest

from asya.up.replica import metrics_enabled


@pytest.mark.parametrize("value", ["false", " FALSE ", "0", "no", "Off"])
def test_metrics_are_off_for_every_false_spelling_the_sidecar_accepts(value: str) -> None:
    # read differently, asya up would wait 30 s for a /health the sidecar never serves
    assert metrics_enabled({"ASYA_METRICS_ENABLED": value}) is False


@pytest.mark.parametrize("env", [{}, {"ASYA_METRICS_ENABLED": ""}, {"ASYA_METRICS_ENABLED": "yes"}])
def test_metrics_are_on_by_default_and_when_empty_or_true(env: dict[str, str]) -> None:
    assert metrics_enabled(env) is True
