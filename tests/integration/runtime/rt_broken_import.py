"""Fails to import: it needs a package that is not installed."""

from __future__ import annotations

from typing import Any

import asya_not_installed_dependency  # type: ignore[import-not-found]  # noqa: F401


def handle(payload: Any) -> Any:
    return payload
