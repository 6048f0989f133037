"""``asya jobs get``'s human view of one job: its fields, then its result or why it failed."""

from __future__ import annotations

import json
from typing import Any

from asya.client.failure_view import failure_lines

_FIELDS = (
    ("tool", "tool"),
    ("status", "status"),
    ("progress", "progress_percent"),
    ("step", "current_step"),
    ("created", "created_at"),
    ("updated", "updated_at"),
)


def job_lines(job: dict[str, Any], *, verbose: bool = False) -> list[str]:
    lines = [f"job {job.get('id')}"]
    for label, key in _FIELDS:
        value = job.get(key)
        if value is None or value == "":
            continue
        if key == "progress_percent" and isinstance(value, int | float):
            value = f"{value:.0f}%"
        lines.append(f"  {label:<9}{value}")
    if job.get("status") == "Succeeded":
        result = json.dumps(job.get("result"), indent=2, ensure_ascii=False)
        lines.append("  result")
        lines.extend("    " + line for line in result.splitlines())
    elif job.get("status") == "Failed":
        lines.extend(failure_lines(job, verbose=verbose))
    return lines
