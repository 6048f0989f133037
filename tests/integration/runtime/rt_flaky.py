"""Imports only while the file named by RT_FLAKY_MARKER does not exist (a dependency that
goes missing), so tests can make replacement workers fail to load."""

from __future__ import annotations

import os
from typing import Any

if os.path.exists(os.environ["RT_FLAKY_MARKER"]):
    raise ImportError("simulated: a dependency went missing")


def handle(payload: Any) -> dict[str, Any]:
    return {"pid": os.getpid()}
