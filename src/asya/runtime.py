"""Asya actor runtime: serves one user handler behind a Unix socket.

This file is deliberately a single module that imports only the standard library: the
Kubernetes operator mounts it into arbitrary user images (``python /opt/asya/asya_runtime.py``)
that may contain nothing but a Python interpreter.

Layout, top to bottom: configuration parsing, framing, (handler loading, request handling,
worker, supervisor — to be completed).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping

# ---------------------------------------------------------------------------------------------
# Configuration parsing (shared with the other Asya processes, which import these helpers)
# ---------------------------------------------------------------------------------------------

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_bool(value: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``on/off`` in any case; ValueError otherwise."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true/false, 1/0, yes/no or on/off, got {value!r}")


def parse_duration(value: str) -> float:
    """A Go-style duration (``300ms``, ``1m30s``, ``5m``) or a bare number of seconds."""
    text = value.strip()
    if not text:
        raise ValueError("empty duration")
    try:
        seconds = float(text)
    except ValueError:
        pos = 0
        seconds = 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text):
            raise ValueError(
                f"invalid duration {value!r}: use a number of seconds or Go syntax like 5s, 1m30s"
            ) from None
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"invalid duration {value!r}: must be a non-negative number")
    return seconds


def parse_octal_mode(value: str) -> int:
    """A file mode in octal: ``660``, ``0660`` and ``0o660`` are the same."""
    text = value.strip().lower()
    if text.startswith("0o"):
        text = text[2:]
    if not text or any(ch not in "01234567" for ch in text):
        raise ValueError(f"invalid octal mode {value!r}")
    mode = int(text, 8)
    if mode > 0o7777:
        raise ValueError(f"invalid octal mode {value!r}: larger than 0o7777")
    return mode


def env_value(environ: Mapping[str, str], name: str) -> str | None:
    """The variable's value, with an empty string treated as unset."""
    value = environ.get(name)
    return value if value else None


# ---------------------------------------------------------------------------------------------
# Framing: a 4-byte big-endian length, then that many bytes of UTF-8 JSON
# ---------------------------------------------------------------------------------------------

FRAME_HEADER = struct.Struct(">I")


def pack_frame(body: bytes) -> bytes:
    """Prefix ``body`` with its length."""
    return FRAME_HEADER.pack(len(body)) + body
