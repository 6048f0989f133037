"""Handlers of the console suite's actors."""

from __future__ import annotations

import time
from typing import Any


def doubler(payload: dict[str, Any]) -> dict[str, Any]:
    time.sleep(float(payload.get("pause", 0)))
    return {**payload, "value": payload["value"] * 2}


def incrementer(payload: dict[str, Any]) -> dict[str, Any]:
    time.sleep(float(payload.get("pause", 0)))
    return {**payload, "value": payload["value"] + 5}


def failing(payload: dict[str, Any]) -> dict[str, Any]:
    return {"missing": payload["missing_key"]}


def echo(payload: dict[str, Any]) -> dict[str, Any]:
    return payload


def split(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """One output per part: a fan-out."""
    return [{"part": part} for part in payload["parts"]]
