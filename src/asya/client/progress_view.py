"""Showing a job's progress while it runs, and its outcome when it ends.

In a terminal the client draws a live bar (percent, current step, message) on stderr. When
output is redirected there is no bar: each change becomes one plain line on stderr, so logs stay
readable and stdout carries only the result JSON, ready for ``jq``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from asya.client.failure_view import failure_lines
from asya.client.gateway import JobEvent


class ProgressView(Protocol):
    def start(self, job_id: str) -> None: ...

    def update(self, event: JobEvent) -> None: ...

    def note(self, text: str) -> None:
        """A message for the user beside the progress (may come from another thread)."""

    def stop(self) -> None: ...


def _describe(data: dict[str, Any]) -> tuple[float | None, str, str]:
    percent = data.get("progress_percent")
    step = data.get("step") or ""
    step_status = data.get("step_status") or ""
    label = f"{step} ({step_status})" if step and step_status else str(step)
    message = str(data.get("error") or data.get("message") or "")
    return (float(percent) if isinstance(percent, int | float) else None), label, message


class PlainProgress:
    """One line per change: ``[ 55%] Running test-incrementer-queue (received) Received …``."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._last: tuple[object, ...] | None = None
        self._percent = 0.0

    def start(self, job_id: str) -> None:
        self._write(f"job {job_id} created")

    def update(self, event: JobEvent) -> None:
        if event.kind == "status":
            self._write(f"status {event.status}")
            return
        percent, label, message = _describe(event.data)
        if percent is not None:
            self._percent = max(self._percent, percent)
        line = (self._percent, event.status, label, message)
        if line == self._last:
            return
        self._last = line
        parts = [f"[{self._percent:3.0f}%]", event.status or "", label, message]
        self._write(" ".join(part for part in parts if part))

    def note(self, text: str) -> None:
        self._write(text)

    def stop(self) -> None:
        self.stream.flush()

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()


class LiveProgress:
    """A rich progress bar on stderr, redrawn for every update."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.fields[status]:<9}"),
            BarColumn(bar_width=30),
            TaskProgressColumn(),
            TextColumn("{task.fields[step]}"),
            TextColumn("[dim]{task.fields[message]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.task: TaskID | None = None

    def start(self, job_id: str) -> None:
        self.console.print(f"[dim]job {job_id}[/dim]")
        self.progress.start()
        self.task = self.progress.add_task(
            "job", total=100, status="Pending", step="", message="waiting for the first actor"
        )

    def update(self, event: JobEvent) -> None:
        if self.task is None:
            return
        if event.kind == "status":
            self.progress.update(self.task, status=event.status or "")
            return
        percent, label, message = _describe(event.data)
        fields: dict[str, Any] = {"status": event.status or ""}
        if label:
            fields["step"] = label
        if message:
            fields["message"] = message if len(message) <= 60 else message[:59] + "…"
        if percent is not None:
            current = self.progress.tasks[0].completed
            fields["completed"] = max(current, percent)
        self.progress.update(self.task, **fields)

    def note(self, text: str) -> None:
        self.progress.console.print(text, style="yellow", markup=False, highlight=False)

    def stop(self) -> None:
        self.progress.stop()


def choose_view(interactive: bool | None = None) -> ProgressView:
    """The live bar when both stdout and stderr are terminals, plain lines otherwise."""
    if interactive is None:
        interactive = sys.stdout.isatty() and sys.stderr.isatty()
    return LiveProgress() if interactive else PlainProgress()


def print_outcome(
    job: dict[str, Any],
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    verbose: bool = False,
) -> int:
    """Result JSON on stdout (exit 0) or the failure on stderr (exit 1): its cause and the
    handler's frame, or (``verbose``) the whole traceback."""
    out = out or sys.stdout
    err = err or sys.stderr
    status = job.get("status")
    if status == "Succeeded" and job.get("error"):  # its result was stored and is gone now
        err.write(f"job {job.get('id')} Succeeded, but its result is unavailable: {job['error']}\n")
        err.flush()
        return 1
    if status == "Succeeded":
        out.write(json.dumps(job.get("result"), indent=2, ensure_ascii=False) + "\n")
        out.flush()
        err.write(f"job {job.get('id')} Succeeded\n")
        return 0
    if status == "Cancelled":
        err.write(f"job {job.get('id')} Cancelled\n")
        err.flush()
        return 1
    err.write("\n".join(failure_lines(job, verbose=verbose)) + "\n")
    err.flush()
    return 1
