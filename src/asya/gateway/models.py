"""The job and job-update records as the API shows them (docs/reference/jobs.md#fields)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

PENDING = "Pending"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
UNKNOWN = "Unknown"
#: Stopped by a client (docs/reference/jobs.md#cancellation); final like the other two.
CANCELLED = "Cancelled"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
STATUSES = (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED, UNKNOWN)

MSG_SENT = "Sending message to first actor"
MSG_SUCCEEDED = "Job completed successfully"
MSG_CANCELLED = "Job cancelled"


def failed_message(error: str) -> str:
    return f"Job failed: {error}"


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Job:
    id: str
    tool: str
    status: str
    route: dict[str, Any]
    payload: Any
    result: Any
    error: str | None
    message: str | None
    timeout_seconds: float | None
    deadline: datetime | None
    progress_percent: float
    current_step: str | None
    steps_completed: int
    total_steps: int
    created_at: datetime
    updated_at: datetime
    #: The cause of a failure (docs/reference/jobs.md#error-details); None unless Failed.
    error_details: dict[str, Any] | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def active(self, now: datetime) -> bool:
        return not self.terminal and (self.deadline is None or now < self.deadline)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tool": self.tool,
            "status": self.status,
            "route": self.route,
            "payload": self.payload,
            "result": self.result,
            "error": self.error,
            "timeout_seconds": self.timeout_seconds,
            "deadline": rfc3339(self.deadline),
            "progress_percent": self.progress_percent,
            "current_step": self.current_step,
            "steps_completed": self.steps_completed,
            "total_steps": self.total_steps,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
            "error_details": self.error_details,
        }


@dataclass(frozen=True)
class JobState:
    """The few fields a change returns (the hot path decodes no payload or result)."""

    id: str
    tool: str
    status: str
    progress_percent: float

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


@dataclass(frozen=True)
class JobUpdate:
    job_id: str
    sequence: int
    status: str
    message: str | None
    result: Any
    error: str | None
    progress_percent: float | None
    step: str | None
    step_status: str | None
    timestamp: datetime
    #: Only on the final update of a Failed job as the SSE stream sends it (never stored).
    error_details: dict[str, Any] | None = None
    #: The fan-out branch the update is about (docs/reference/jobs.md#fan-out), else None.
    branch: list[dict[str, int]] | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_json(self) -> dict[str, Any]:
        """The SSE ``data`` object (every field present, null when unset; ``branch`` only in
        updates about a fan-out branch)."""
        data = {
            "job_id": self.job_id,
            "status": self.status,
            "message": self.message,
            "result": self.result,
            "error": self.error,
            "progress_percent": self.progress_percent,
            "step": self.step,
            "step_status": self.step_status,
            "timestamp": rfc3339(self.timestamp),
            "error_details": self.error_details,
        }
        if self.branch:
            data["branch"] = self.branch
        return data

    def to_wire(self) -> dict[str, Any]:
        """Everything needed to rebuild the update (the NOTIFY payload)."""
        return {**self.to_json(), "sequence": self.sequence}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> JobUpdate:
        percent = data.get("progress_percent")
        return cls(
            job_id=data["job_id"],
            sequence=int(data["sequence"]),
            status=data["status"],
            message=data.get("message"),
            result=data.get("result"),
            error=data.get("error"),
            progress_percent=None if percent is None else float(percent),
            step=data.get("step"),
            step_status=data.get("step_status"),
            timestamp=datetime.fromisoformat(data["timestamp"]),
            error_details=data.get("error_details"),
            branch=data.get("branch"),
        )
