"""The quickstart's two actors: plain functions that take a payload and return the next one.

Each runs in its own runtime process behind its own queue; ``asya up`` wires them together and
the gateway's ``test_pipeline`` tool sends ``{"value": 10}`` through both: 10 → 20 → 25.
"""

from __future__ import annotations

from typing import Any


def pipeline_doubler(payload: dict[str, Any]) -> dict[str, Any]:
    """Double ``value``."""
    return {**payload, "value": payload["value"] * 2}


def pipeline_incrementer(payload: dict[str, Any]) -> dict[str, Any]:
    """Add five to ``value``."""
    return {**payload, "value": payload["value"] + 5}
