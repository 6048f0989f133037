"""``asya jobs list``'s table: every column fits the terminal, status is never cut."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console

from asya.client.jobs_table import fit_widths, jobs_table, short_duration

NOW = datetime(2026, 5, 1, 12, 0, 30, tzinfo=UTC)
JOBS = [
    {
        "id": "3f2a1c9e-4b5d-4e6f-8a9b-0c1d2e3f4a5b",
        "tool": "document_pipeline_with_a_long_name",
        "status": "Succeeded",
        "progress_percent": 100,
        "duration_seconds": 12.5,
        "created_at": "2026-05-01T12:00:00.000000Z",
        "error": None,
    },
    {
        "id": "4f2a1c9e-4b5d-4e6f-8a9b-0c1d2e3f4a5b",
        "tool": "shout",
        "status": "Failed",
        "progress_percent": 5,
        "duration_seconds": 300.0,
        "created_at": "2026-05-01T11:55:00.000000Z",
        "error": "processing_error: KeyError 'missing_key' raised\nin the handler",
        "error_code": "processing_error",
    },
    {
        "id": "5f2a1c9e-4b5d-4e6f-8a9b-0c1d2e3f4a5b",
        "tool": "shout",
        "status": "Running",
        "progress_percent": 55,
        "duration_seconds": None,
        "created_at": "2026-05-01T12:00:00.000000Z",
        "error": None,
    },
]


def render(width: int) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None)
    console.print(jobs_table(JOBS, console.width, now=NOW))
    return out.getvalue().splitlines()


def test_at_80_columns_every_line_fits_and_statuses_are_whole() -> None:
    lines = render(80)
    assert all(len(line) <= 80 for line in lines)
    header, *rows = lines
    assert header.split() == ["id", "tool", "status", "progress", "duration", "error"]
    for row, status in zip(rows, ("Succeeded", "Failed", "Running"), strict=True):
        assert f" {status} " in row
    assert "100%" in rows[0]
    assert "12.5s" in rows[0]
    assert "5m00s" in rows[1]
    assert "processing_err" in rows[1]
    assert "30.0s+" in rows[2]  # still going: the time so far
    assert "…" in rows[0]  # the id and the long tool name gave up room


def test_a_wide_terminal_shows_everything_uncut() -> None:
    lines = render(200)
    text = "\n".join(lines)
    assert "…" not in text
    assert "3f2a1c9e-4b5d-4e6f-8a9b-0c1d2e3f4a5b" in text
    assert "document_pipeline_with_a_long_name" in text
    assert "processing_error: KeyError 'missing_key' raised in the handler" in text


def test_fit_cuts_the_widest_flexible_columns_first() -> None:
    # id, tool, status, progress, duration, error
    natural = [36, 5, 9, 8, 8, 30]
    widths = fit_widths(natural, 70)
    assert widths[2:5] == [9, 8, 8]
    assert widths[1] == 5  # short enough to stay whole
    assert widths[0] == widths[5]
    assert sum(widths) <= 70


def test_short_durations() -> None:
    assert [short_duration(s) for s in (0.25, 4.2, 185, 7620)] == [
        "250ms",
        "4.2s",
        "3m05s",
        "2h07m",
    ]
