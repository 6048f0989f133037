"""Handlers the sidecar ↔ runtime suite runs, one actor (runtime + sidecar) per handler.

The runtime imports this module as ``handlers`` (the suite folder is on its PYTHONPATH), so it
may import only the standard library. The tests import the constants and ``make_blob`` from
here to build the results they expect; the values still travel through a runtime, a sidecar and
the broker before they are compared.

Payload-mode handlers receive and return payloads; the ``*_message`` handlers run in message
mode and receive and return whole messages (they read ``route.metadata.attempt``).
"""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import os
import signal
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ERROR_MESSAGE = "Intentional test failure"
OOM_MESSAGE = "Simulated out of memory"
CUDA_OOM_MESSAGE = "CUDA out of memory: Tried to allocate 4.0 GiB"
NESTED_DEPTH = 20
FANOUT_ACTION_COUNT = 3

UNICODE_TEXT = {
    "chinese": "你好世界",
    "japanese": "こんにちは世界",
    "korean": "안녕하세요 세계",
    "arabic": "مرحبا بالعالم",
    "hebrew": "שלום עולם",
    "russian": "Привет, мир",
    "greek": "Γειά σου Κόσμε",
    "hindi": "नमस्ते दुनिया",
    "thai": "สวัสดีชาวโลก",
    "combining": "e\u0301 n\u0303 a\u030a",
    "controls": "tab\there\nnewline \u2028 line-sep \u200b zero-width \u200f rtl-mark",
    "quotes": "\"double\" 'single' \\backslash\\ </script>",
}
EMOJI = "🚀🎉👍🏽👨‍👩‍👧‍👦🇺🇦"


def _payload_dict(payload: Any) -> dict[str, Any]:
    return dict(payload) if isinstance(payload, dict) else {"input": payload}


def make_blob(size: int) -> str:
    """``size`` ASCII characters that are not one repeated byte, so corruption shows."""
    chunks: list[str] = []
    produced = 0
    counter = 0
    while produced < size:
        chunk = hashlib.sha256(str(counter).encode()).hexdigest()
        chunks.append(chunk)
        produced += len(chunk)
        counter += 1
    return "".join(chunks)[:size]


def nested_structure(depth: int = NESTED_DEPTH) -> dict[str, Any]:
    """``depth`` levels of ``{"level": n, "child": …}`` ending in a leaf with a list."""
    node: dict[str, Any] = {"level": depth, "leaf": True, "values": [depth, None, "deepest"]}
    for level in range(depth - 1, 0, -1):
        node = {"level": level, "name": f"level-{level}", "child": node}
    return node


def _touch_marker(payload: Any) -> None:
    """Write this worker's pid to ``payload["started_marker"]`` when the test asks for it."""
    if isinstance(payload, dict) and payload.get("started_marker"):
        Path(payload["started_marker"]).write_text(str(os.getpid()))


# --- payload mode ---------------------------------------------------------------------------


def echo(payload: Any) -> Any:
    """Returns the payload; with a ``message`` field returns ``{"echoed": message}`` after 0.5 s."""
    if isinstance(payload, dict) and "message" in payload:
        time.sleep(0.5)
        return {"echoed": payload["message"]}
    return payload


def error(payload: Any) -> Any:
    """Raises ValueError unless ``should_fail`` is false."""
    if isinstance(payload, dict) and payload.get("should_fail") is False:
        return {**payload, "status": "ok"}
    raise ValueError(ERROR_MESSAGE)


def oom(payload: Any) -> Any:
    """Raises MemoryError, as an allocation the machine cannot satisfy would."""
    raise MemoryError(OOM_MESSAGE)


def cuda_oom(payload: Any) -> Any:
    """Raises the error PyTorch raises when the GPU runs out of memory (no torch needed)."""
    raise RuntimeError(CUDA_OOM_MESSAGE)


_cache_marker: dict[str, str] = {}


def _install_fake_torch() -> Any:
    """A stand-in ``torch`` in ``sys.modules`` whose ``cuda.empty_cache`` leaves a file."""
    torch = sys.modules.get("torch")
    if torch is None:
        torch = types.ModuleType("torch")
        oom_class = type("OutOfMemoryError", (RuntimeError,), {})

        def empty_cache() -> None:
            if "path" in _cache_marker:
                Path(_cache_marker["path"]).write_text("emptied")

        torch.OutOfMemoryError = oom_class  # type: ignore[attr-defined]
        torch.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
            OutOfMemoryError=oom_class, empty_cache=empty_cache, is_available=lambda: True
        )
        sys.modules["torch"] = torch
    return torch


def fake_torch_oom(payload: Any) -> Any:
    """Raises a CUDA OOM with (a stand-in) torch imported, so the runtime empties its cache.

    ``by_class``: raise ``torch.OutOfMemoryError`` with a message that does not say "CUDA out
    of memory"; otherwise a RuntimeError with the text. ``cache_marker``: the file
    ``torch.cuda.empty_cache()`` writes.
    """
    data = _payload_dict(payload)
    torch = _install_fake_torch()
    _cache_marker["path"] = data["cache_marker"]
    if data.get("by_class"):
        raise torch.OutOfMemoryError("Tried to allocate 400.00 GiB on GPU 0")
    raise RuntimeError(CUDA_OOM_MESSAGE)


def timeout(payload: Any) -> Any:
    """Sleeps ``sleep_seconds`` (or ``sleep``) seconds; its sidecar's timeout is shorter."""
    _touch_marker(payload)
    data = _payload_dict(payload)
    seconds = float(data.get("sleep_seconds", data.get("sleep", 0)))
    time.sleep(seconds)
    return {**data, "slept": seconds}


def fanout(payload: Any) -> Any:
    """``count`` copies of the payload, each with its ``index`` (a generator when asked)."""
    data = _payload_dict(payload)
    count = int(data.get("count", 3))
    if data.get("as_generator"):
        return ({**data, "index": index} for index in range(count))
    return [{**data, "index": index} for index in range(count)]


def empty_response(payload: Any) -> Any:
    """Returns None, or ``[]`` when ``return_list`` is set: nothing to route."""
    if isinstance(payload, dict) and payload.get("return_list"):
        return []
    return None


def large_payload(payload: Any) -> Any:
    """Adds ``size_kb`` KiB of data (``make_blob``) and ``data_size_kb``."""
    data = _payload_dict(payload)
    size_kb = int(data.get("size_kb", 100))
    return {**data, "data": make_blob(size_kb * 1024), "data_size_kb": size_kb}


def unicode(payload: Any) -> Any:
    """Adds text in several scripts and an ``emoji`` field."""
    return {**_payload_dict(payload), "text": dict(UNICODE_TEXT), "emoji": EMOJI}


def null_values(payload: Any) -> Any:
    """Adds nulls at several depths next to values that are falsy but not null."""
    return {
        **_payload_dict(payload),
        "null_field": None,
        "nested": {"null": None, "list": [None, 1, None], "deep": {"deeper": {"value": None}}},
        "list_of_nulls": [None, None],
        "empty_string": "",
        "zero": 0,
        "false": False,
        "empty_list": [],
        "empty_dict": {},
    }


def conditional(payload: Any) -> Any:
    """Behaves as ``action`` says: success, error, oom, slow, fanout or empty."""
    data = _payload_dict(payload)
    action = data.get("action", "success")
    if action == "success":
        return {**data, "result": "success"}
    if action == "error":
        raise ValueError(ERROR_MESSAGE)
    if action == "oom":
        raise MemoryError(OOM_MESSAGE)
    if action == "slow":
        time.sleep(float(data.get("sleep", 1.0)))
        return {**data, "result": "slow"}
    if action == "fanout":
        return [{**data, "index": index} for index in range(FANOUT_ACTION_COUNT)]
    if action == "empty":
        return None
    raise ValueError(f"unknown action {action!r}")


def nested_data(payload: Any) -> Any:
    """Adds a 20-level structure and ``nested_depth: 20``."""
    return {**_payload_dict(payload), "nested": nested_structure(), "nested_depth": NESTED_DEPTH}


def crash(payload: Any) -> Any:
    """Kills its own worker process (SIGKILL, or a segfault) unless ``crash`` is false."""
    data = _payload_dict(payload)
    if data.get("crash", True) is False:
        return {**data, "crashed": False}
    if data.get("how") == "segfault":
        ctypes.string_at(0)
    os.kill(os.getpid(), signal.SIGKILL)
    return data  # unreachable


def poison(payload: Any) -> Any:
    """Echoes, except for a message marked with ``signal``/``release`` paths: it appends a line
    to ``signal`` (the harness kills the sidecar on seeing it), then waits until ``release`` has
    as many lines (the harness adds one after the kill), so it never finishes first."""
    data = _payload_dict(payload)
    if "signal" not in data:
        return data
    signal_path, release_path = Path(data["signal"]), Path(data["release"])
    with signal_path.open("a") as out:
        out.write("started\n")
    calls = len(signal_path.read_text().splitlines())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if release_path.exists() and len(release_path.read_text().splitlines()) >= calls:
            break
        time.sleep(0.02)
    return data


def generator_echo(payload: Any) -> Iterator[Any]:
    """A generator handler: yields the payload once per ``repeat``."""
    data = _payload_dict(payload)
    for index in range(int(data.get("repeat", 1))):
        yield {**data, "yield_index": index}


async def async_echo(payload: Any) -> Any:
    """An ``async def`` handler: awaited by the runtime."""
    await asyncio.sleep(0.01)
    return {**_payload_dict(payload), "awaited": True}


class Counter:
    """A class handler (``handlers.Counter.handle``): one instance per worker process.

    ``calls`` counts this instance's calls, so a replacement worker starts again from 1. With
    ``crash`` set the worker kills itself instead.
    """

    def __init__(self, start: int = 0) -> None:
        self.calls = start

    def handle(self, payload: Any) -> Any:
        data = _payload_dict(payload)
        if data.get("crash"):
            os.kill(os.getpid(), signal.SIGKILL)
        self.calls += 1
        return {**data, "calls": self.calls}


# --- message mode ---------------------------------------------------------------------------


def _attempt(message: dict[str, Any]) -> int:
    metadata = message.get("route", {}).get("metadata") or {}
    return int(metadata.get("attempt", 0))


def route_extender_message(message: dict[str, Any]) -> Any:
    """Inserts ``payload.append_steps`` right after the current step.

    ``split_into`` (a list of step lists) instead fans out one message per list, each with its
    own future steps. ``minimal`` returns only ``route`` and ``payload`` (the runtime copies the
    other top-level fields back). ``return_instead`` returns that value, message or not.
    ``rewrite_history`` renames the step behind it, which the runtime must refuse ("an actor
    cannot rewrite the route behind it").
    """
    route = dict(message["route"])
    steps = list(route["steps"])
    current = route["current"]
    payload = {**_payload_dict(message.get("payload")), "extended_by": steps[current]}
    if payload.get("rewrite_history"):
        steps[current] = steps[current] + "-rewritten"
    if "return_instead" in payload:
        return payload["return_instead"]
    if "split_into" in payload:
        return [
            {
                **message,
                "route": {**route, "steps": steps[: current + 1] + list(more)},
                "payload": {**payload, "branch": index},
            }
            for index, more in enumerate(payload["split_into"])
        ]
    ahead = list(payload.get("append_steps", []))
    route["steps"] = steps[: current + 1] + ahead + steps[current + 1 :]
    if payload.get("minimal"):
        return {"route": route, "payload": payload}
    return {**message, "route": route, "payload": payload}


def flaky_oom_message(message: dict[str, Any]) -> dict[str, Any]:
    """Raises MemoryError while ``route.metadata.attempt < payload.fail_times``."""
    attempt = _attempt(message)
    payload = _payload_dict(message.get("payload"))
    if attempt < int(payload.get("fail_times", 1)):
        raise MemoryError(OOM_MESSAGE)
    return {**message, "payload": {**payload, "succeeded_on_attempt": attempt}}


def crash_once_message(message: dict[str, Any]) -> dict[str, Any]:
    """Kills its worker while ``route.metadata.attempt < payload.fail_times``."""
    attempt = _attempt(message)
    payload = _payload_dict(message.get("payload"))
    if attempt < int(payload.get("fail_times", 1)):
        _touch_marker(payload)
        os.kill(os.getpid(), signal.SIGKILL)
    return {**message, "payload": {**payload, "succeeded_on_attempt": attempt}}
