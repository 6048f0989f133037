"""Handlers of the asya up integration suite (copied into each test mesh's folder)."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any


def pipeline_doubler(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "value": payload["value"] * 2}


def pipeline_incrementer(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "value": payload["value"] + 5}


def always_fails(payload: dict[str, Any]) -> dict[str, Any]:
    raise ValueError(f"cannot handle {payload!r}")


def slow(payload: dict[str, Any]) -> dict[str, Any]:
    """Sleeps, then says which process did the work (one per replica)."""
    time.sleep(float(payload["seconds"]))
    return {"slept": payload["seconds"], "pid": os.getpid()}


def make_big(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload of ``size`` bytes of text: over the offload threshold it travels by reference."""
    return {"blob": "b" * int(payload["size"]), "seconds": payload.get("seconds", 0)}


def measure_big(payload: dict[str, Any]) -> dict[str, Any]:
    return {"length": len(payload["blob"])}


def fan_big(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Four branches, each with the whole (big) payload and its index."""
    return [{**payload, "index": index} for index in range(4)]


def tag_big(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "seen": True}


def slow_measure(payload: dict[str, Any]) -> dict[str, Any]:
    time.sleep(float(payload.get("seconds", 0)))
    return {"length": len(payload["blob"])}


def digest_text(payload: dict[str, Any]) -> dict[str, Any]:
    """What arrived: a large ``text`` argument's length and sha256."""
    data = payload["text"].encode()
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}
