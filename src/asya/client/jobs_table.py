"""The ``asya jobs list`` table, fitted to the terminal's width.

Status, progress and duration are short and always shown whole. When the table is too wide,
the id, tool and error columns give up room, the widest first, down to a common width, and
their cells end in "…" (``--json`` prints everything).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.table import Table

HEADERS = ("id", "tool", "status", "progress", "duration", "error")
_FLEXIBLE = (0, 1, 5)  # id, tool, error
_NARROWEST = 4
_GAP = 2  # between columns, as the table below draws them


def short_duration(seconds: float) -> str:
    """``850ms``, ``4.2s``, ``3m05s``, ``2h07m``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _duration(job: dict[str, Any], now: datetime) -> str:
    """The job's duration; for a job still going, the time so far with a trailing "+"."""
    seconds = job.get("duration_seconds")
    if isinstance(seconds, int | float):
        return short_duration(float(seconds))
    try:
        created = datetime.fromisoformat(str(job.get("created_at")))
    except ValueError:
        return ""
    return short_duration(max(0.0, (now - created).total_seconds())) + "+"


def job_row(job: dict[str, Any], now: datetime | None = None) -> list[str]:
    now = now or datetime.now(UTC)
    error = job.get("error") or job.get("error_code") or ""
    return [
        str(job.get("id") or ""),
        str(job.get("tool") or ""),
        str(job.get("status") or ""),
        f"{float(job.get('progress_percent') or 0):.0f}%",
        _duration(job, now),
        " ".join(str(error).split()),  # one line, whatever the error held
    ]


def fit_widths(natural: list[int], available: int) -> list[int]:
    """Widths for the columns: the flexible ones cut to one common level so all fit."""
    widths = list(natural)
    fixed = sum(width for index, width in enumerate(widths) if index not in _FLEXIBLE)
    room = available - fixed
    flexible = sorted(widths[index] for index in _FLEXIBLE)
    if sum(flexible) <= room:
        return widths
    level = _NARROWEST
    for candidate in range(max(flexible), _NARROWEST - 1, -1):
        if sum(min(width, candidate) for width in flexible) <= room:
            level = candidate
            break
    for index in _FLEXIBLE:
        widths[index] = min(widths[index], level)
    return widths


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def jobs_table(jobs: list[dict[str, Any]], width: int, now: datetime | None = None) -> Table:
    """The table for ``width`` terminal columns."""
    rows = [job_row(job, now) for job in jobs]
    natural = [
        max([len(header), *(len(row[i]) for row in rows)]) for i, header in enumerate(HEADERS)
    ]
    widths = fit_widths(natural, width - _GAP * (len(HEADERS) - 1))
    table = Table(box=None, pad_edge=False, padding=(0, 1), header_style="bold")
    for header, column_width in zip(HEADERS, widths, strict=True):
        numeric = header in ("progress", "duration")
        table.add_column(
            header, width=column_width, no_wrap=True, justify="right" if numeric else "left"
        )
    for row in rows:
        table.add_row(*(_cut(cell, w) for cell, w in zip(row, widths, strict=True)))
    return table
