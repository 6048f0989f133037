"""``GET /jobs``: its filters, its cursor and the fields each listed job adds
(docs/reference/gateway-api.md#listing-jobs).

Pages are newest first by ``(created_at, id)``. The cursor is that pair for the last job of a
page, opaque to clients (base64 of JSON): the next page starts strictly after it, so jobs
created meanwhile never shift or repeat a page (they belong before the first one).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from asya.gateway.models import STATUSES, Job, rfc3339
from asya.gateway.results import listed

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
_STATUS_NAMES = {status.lower(): status for status in STATUSES}
_CODE = re.compile(r"^([A-Za-z_][\w.-]*):")
_TIMED_OUT = "job timed out"


class BadFilter(ValueError):
    """A query parameter of ``GET /jobs`` cannot be used (answered 400 with this text)."""


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: str

    def encode(self) -> str:
        raw = orjson.dumps([rfc3339(self.created_at), self.id])
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            moment, job_id = orjson.loads(raw)
            created_at = datetime.fromisoformat(moment)
        except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
            raise BadFilter("cursor is not one this gateway gave out (use next_cursor)") from None
        if not isinstance(job_id, str) or created_at.tzinfo is None:
            raise BadFilter("cursor is not one this gateway gave out (use next_cursor)")
        return cls(created_at, job_id)


@dataclass(frozen=True)
class JobFilter:
    status: str | None = None
    tool: str | None = None
    limit: int = DEFAULT_LIMIT
    after: Cursor | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> JobFilter:
        """Read ``status`` (any case), ``tool``, ``limit`` (at most 500) and ``cursor``."""
        raw_status = query.get("status") or None
        status = None if raw_status is None else _STATUS_NAMES.get(raw_status.lower())
        if raw_status is not None and status is None:
            raise BadFilter(f"status must be one of {', '.join(STATUSES)}, got {raw_status!r}")
        tool = query.get("tool") or None
        if tool is not None and len(tool) > 255:
            raise BadFilter("tool must be a tool name (at most 255 characters)")
        raw_limit = query.get("limit") or str(DEFAULT_LIMIT)
        try:
            limit = int(raw_limit)
        except ValueError:
            raise BadFilter(f"limit must be an integer, got {raw_limit!r}") from None
        if limit < 1:
            raise BadFilter(f"limit must be at least 1, got {limit}")
        cursor = query.get("cursor") or None
        after = None if cursor is None else Cursor.decode(cursor)
        return cls(status=status, tool=tool, limit=min(limit, MAX_LIMIT), after=after)


def error_code(job: Job) -> str | None:
    """The failure's code: ``error_details.code``, else the part of ``error`` before ':'
    (``processing_error: …``); ``timeout`` for a job its deadline ended."""
    details = getattr(job, "error_details", None)
    if isinstance(details, Mapping) and isinstance(details.get("code"), str):
        code: str = details["code"]
        return code
    if not job.error:
        return None
    match = _CODE.match(job.error)
    if match:
        return match.group(1)
    return "timeout" if job.error.startswith(_TIMED_OUT) else "error"


def duration_seconds(job: Job) -> float | None:
    """Seconds from creation to the end; None while the job has not ended."""
    if not job.terminal:
        return None
    return round((job.updated_at - job.created_at).total_seconds(), 3)


def list_item(job: Job) -> dict[str, Any]:
    """The job as ``GET /jobs/{id}`` shows it (but a result stored by reference is null), plus
    ``tool``, ``duration_seconds`` and ``error_code``."""
    return {
        **job.to_json(),
        "result": listed(job.result),
        "tool": job.tool,
        "duration_seconds": duration_seconds(job),
        "error_code": error_code(job),
    }
