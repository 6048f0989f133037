"""Progress arithmetic (docs/reference/jobs.md#progress), kept pure so the formula is tested on its
own.

``percent = (step_index * 100 + weight) / total_steps`` with weights received 10, processing 50,
completed 100, clamped to [0, 100]. The "never lower" rule is applied by the store inside the
database, where concurrent reports meet.
"""

from __future__ import annotations

STEP_WEIGHTS: dict[str, int] = {"received": 10, "processing": 50, "completed": 100}

#: Heartbeat statuses from handlers → step statuses (``error`` fails the job instead).
HEARTBEAT_STEP_STATUS: dict[str, str] = {
    "picked_up": "received",
    "processing": "processing",
    "completed": "completed",
}


def step_percent(step_index: int, total_steps: int, step_status: str) -> float:
    """The job's percent implied by one step report."""
    if total_steps <= 0:
        return 0.0
    weight = STEP_WEIGHTS[step_status]
    percent = (step_index * 100 + weight) / total_steps
    return float(min(100.0, max(0.0, percent)))
