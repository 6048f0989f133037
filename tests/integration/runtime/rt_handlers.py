"""Handlers the runtime process tests load (the runtime starts with this folder as its cwd).

Nothing here is imported by the test process itself: each runtime worker imports it.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import time
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any

# The exception text a real CUDA OOM carries (docs/reference/runtime-protocol.md#error-codes; seen
# on an H100 with torch 2.11).
CUDA_OOM_TEXT = (
    "CUDA out of memory. Tried to allocate 400.00 GiB. GPU 0 has a total capacity of 79.18 GiB"
    " of which 70.66 GiB is free."
)


def echo(payload: Any) -> Any:
    return payload


def with_pid(payload: Any) -> dict[str, Any]:
    """The payload and the worker's pid, so tests see which worker answered."""
    return {"payload": payload, "pid": os.getpid()}


class Counter:
    """Counts calls: the count restarts only when a fresh worker builds a new instance."""

    def __init__(self, start: int = 0) -> None:
        self.calls = start

    def count(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if "started" in payload:  # tells the test the call is under way
            with open(payload["started"], "w"):
                pass
        time.sleep(float(payload.get("sleep", 0)))
        return {"calls": self.calls, "pid": os.getpid()}


class CallableHandler:
    def __init__(self) -> None:
        self.prefix = "called"

    def __call__(self, payload: Any) -> dict[str, Any]:
        return {self.prefix: payload}


class BrokenInit:
    def __init__(self) -> None:
        raise RuntimeError("model file /models/missing.bin not found")

    def process(self, payload: Any) -> Any:
        return payload


async def async_double(payload: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0.01)
    return {"value": payload["value"] * 2}


def fan_out(payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for index in range(payload["count"]):
        yield {"index": index}


async def async_fan_out(payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    for index in range(payload["count"]):
        await asyncio.sleep(0)
        yield {"index": index}


def returns_list(payload: dict[str, Any]) -> list[Any]:
    return [{"item": item} for item in payload["items"]]


def returns_tuple(payload: dict[str, Any]) -> tuple[Any, ...]:
    return ("first", "second")


def returns_one_list(payload: dict[str, Any]) -> list[Any]:
    return [payload["items"]]


def returns_none(payload: Any) -> None:
    return None


def returns_empty(payload: Any) -> list[Any]:
    return []


def conditional(payload: dict[str, Any]) -> Any:
    """One handler for the error tests: ``action`` picks what happens."""
    action = payload.get("action")
    if action == "error":
        raise ValueError(f"invalid value: {payload.get('value')}")
    if action == "oom":
        raise MemoryError("cannot allocate 64 GiB")
    if action == "cuda_oom_text":
        raise RuntimeError(CUDA_OOM_TEXT)
    if action == "exit":
        sys.exit(3)
    if action == "nan":
        return {"value": float("nan")}
    if action == "set":
        return {"value": {1, 2}}
    if action == "torch_loaded":
        return {"torch_loaded": "torch" in sys.modules}
    if action == "sleep":
        time.sleep(float(payload["seconds"]))
    return payload


def _install_fake_torch(marker: str) -> types.ModuleType:
    """A stand-in ``torch`` in sys.modules whose ``cuda.empty_cache`` leaves ``marker``."""

    class OutOfMemoryError(RuntimeError):
        pass

    def empty_cache() -> None:
        with open(marker, "a") as file:
            file.write("emptied\n")

    torch = types.ModuleType("torch")
    cuda = types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError, empty_cache=empty_cache)
    torch.cuda = cuda  # type: ignore[attr-defined]
    torch.OutOfMemoryError = OutOfMemoryError  # type: ignore[attr-defined]
    sys.modules["torch"] = torch
    return torch


def fake_torch_oom(payload: dict[str, Any]) -> Any:
    """Imports the fake torch, then fails like torch does (by class, optionally with the text)."""
    torch = _install_fake_torch(payload["marker"])
    message = CUDA_OOM_TEXT if payload.get("with_text", True) else "allocation failed"
    raise torch.OutOfMemoryError(message)


def message_echo(message: dict[str, Any]) -> dict[str, Any]:
    """Message mode: reports what it received and adds a field."""
    return {"payload": {"received": message}, "route": message["route"], "note": "handled"}


def message_partial(message: dict[str, Any]) -> dict[str, Any]:
    """Returns only a payload: every other field comes from the input."""
    return {"payload": {"done": True}}


def message_override(message: dict[str, Any]) -> dict[str, Any]:
    return {**message, "job_id": "set-by-handler", "payload": 1}


def message_reroute(message: dict[str, Any]) -> dict[str, Any]:
    """Message mode: the payload says how to change the route."""
    route = dict(message["route"])
    edit = message["payload"]["edit"]
    current = route["current"]
    if edit == "replace_future":
        route["steps"] = [*route["steps"][: current + 1], "x", "y"]
    elif edit == "drop_future":
        route["steps"] = route["steps"][: current + 1]
    elif edit == "advance_current":
        route["current"] = current + 1
    elif edit == "rewrite_past":
        route["steps"] = ["someone-else", *route["steps"][1:]]
    elif edit == "rewrite_current":
        route["steps"] = [*route["steps"][:current], "other", *route["steps"][current + 1 :]]
    return {**message, "route": route}


def message_not_dict(message: dict[str, Any]) -> Any:
    return 42


def crash_in_c(payload: Any) -> Any:
    """Segfaults the worker, like a broken C extension."""
    return ctypes.string_at(0)


NOT_CALLABLE = {"just": "data"}


def message_edit_in_place(message: dict[str, Any]) -> dict[str, Any]:
    """Message mode: rewrites the route behind it by editing the input message itself."""
    message["route"]["steps"][0] = "someone-else"
    message["route"]["current"] += 1
    return message


class StartsHelperProcess:
    """Starts a long-lived helper process while loading, as model servers and pools do; the
    helper inherits the worker's file descriptors."""

    def __init__(self) -> None:
        self.helper = os.fork()
        if self.helper == 0:
            time.sleep(60)
            os._exit(0)

    def handle(self, payload: Any) -> dict[str, Any]:
        return {"helper": self.helper, "pid": os.getpid()}


def prints(payload: Any) -> Any:
    print(f"handler saw {payload}")
    return payload
