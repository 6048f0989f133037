"""The queue message (docs/reference/message.md): parsing, route validation and the fields actors
read.

A message is a JSON object ``{"job_id"?, "route": {"steps", "current", "metadata"?},
"payload", ...}``. These helpers work on the decoded ``dict`` and never drop unknown fields, so
a message written by another Asya implementation passes through unchanged.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson

from asya.runtime import validate_request

Message = dict[str, Any]

# orjson reads integers beyond 64 bits as floats (2**64 → 1.8446744073709552e+19) and refuses to
# write them. A run of 20+ digits is the only way such an integer can appear, so bodies that
# contain one take the exact (slower) standard-library path; everything else stays on orjson.
# The run is looked for with every digit made "0" and everything else " " (bytes.translate and
# a substring search: several times faster than a regular expression, and this runs twice per
# message in the sidecar).
_DIGITS_ONLY = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_RUN = b"0" * 20


def decode_json(body: bytes) -> Any:
    """Parse JSON without losing the precision of big integers; ValueError when invalid."""
    if _LONG_RUN in body.translate(_DIGITS_ONLY):
        return json.loads(body, parse_constant=_reject_constant)
    return orjson.loads(body)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def encode_json(value: Any) -> bytes:
    """Serialise ``value`` compactly, keeping integers beyond 64 bits exact."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits (or a non-JSON type)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class MessageError(ValueError):
    """The body is not a usable Asya message; the text says why."""


def parse_message(body: bytes) -> Message:
    """Decode ``body`` as a JSON object; ``MessageError`` when it is not one."""
    try:
        message = decode_json(body)
    except ValueError as exc:  # orjson.JSONDecodeError and json.JSONDecodeError both are
        raise MessageError(f"message is not valid JSON: {exc}") from exc
    if not isinstance(message, dict):
        raise MessageError(f"message must be a JSON object, got {type(message).__name__}")
    return message


def message_problem(message: Message, *, finished_allowed: bool = False) -> str | None:
    """Why the message cannot be processed or routed, or None when it is valid.

    The rules are the runtime's own request validation (one implementation, in
    ``asya.runtime``): ``payload`` present, ``route.steps`` a list of non-empty strings,
    ``route.current`` an integer index into it. ``current == len(steps)`` (a route that has
    finished) is accepted only with ``finished_allowed``, as terminal actors receive such
    messages; ``route.metadata``, when present, must be an object.
    """
    problem = validate_request(message)
    if problem is not None:
        return problem
    route = message["route"]
    steps, current = route["steps"], route["current"]
    if not finished_allowed and current == len(steps):
        return f"route.current {current} is out of range: the route's {len(steps)} steps are done"
    metadata = route.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        return "route.metadata must be an object"
    return None


def metadata_of(message: Message) -> dict[str, Any]:
    """The route's metadata (an empty dict when absent)."""
    route = message.get("route")
    metadata = route.get("metadata") if isinstance(route, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def job_id_of(message: Message) -> str | None:
    """The job id: the top-level ``job_id``, else ``route.metadata.job_id``."""
    job_id = message.get("job_id")
    if not isinstance(job_id, str) or not job_id:
        job_id = metadata_of(message).get("job_id")
    return job_id if isinstance(job_id, str) and job_id else None


def attempt_of(message: Message) -> int:
    """Retries so far (``route.metadata.attempt``; 0 when absent or malformed)."""
    attempt = metadata_of(message).get("attempt")
    if isinstance(attempt, int) and not isinstance(attempt, bool) and attempt > 0:
        return attempt
    return 0


def parse_deadline(value: object) -> datetime | None:
    """An RFC 3339 timestamp as an aware UTC datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def deadline_passed(message: Message, now: datetime | None = None) -> bool:
    """True when ``route.metadata.deadline`` is set and already in the past."""
    deadline = parse_deadline(metadata_of(message).get("deadline"))
    if deadline is None:
        return False
    return (now or datetime.now(UTC)) >= deadline


def branch_text(branch: Any) -> str | None:
    """A fan-out branch (docs/reference/message.md#branch) as ``index/count`` per level,
    joined by dots (``2/3.0/4``); None outside a fan-out."""
    if not isinstance(branch, list) or not branch:
        return None
    return ".".join(
        f"{level.get('index')}/{level.get('count')}" if isinstance(level, dict) else "?"
        for level in branch
    )
