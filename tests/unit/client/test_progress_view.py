"""Progress rendering: plain lines when redirected, a live bar in a terminal, the outcome."""

from __future__ import annotations

import io
import json

from rich.console import Console

from asya.client.gateway import JobEvent
from asya.client.progress_view import LiveProgress, PlainProgress, choose_view, print_outcome


def update(status: str, percent: float, step: str, step_status: str, message: str) -> JobEvent:
    data = {
        "status": status,
        "progress_percent": percent,
        "step": step,
        "step_status": step_status,
        "message": message,
    }
    return JobEvent("update", status, data, None)


def test_plain_progress_writes_one_line_per_change_and_never_goes_backwards() -> None:
    out = io.StringIO()
    view = PlainProgress(out)

    view.start("j1")
    view.update(JobEvent("status", "Running", {}, None))
    view.update(update("Running", 55, "inc", "received", "Received message (0.25 KB)"))
    view.update(update("Running", 55, "inc", "received", "Received message (0.25 KB)"))
    view.update(update("Running", 40, "dbl", "completed", "late report"))
    view.stop()

    assert out.getvalue().splitlines() == [
        "job j1 created",
        "status Running",
        "[ 55%] Running inc (received) Received message (0.25 KB)",
        "[ 55%] Running dbl (completed) late report",
    ]


def test_live_progress_draws_percent_step_and_message_in_a_terminal() -> None:
    out = io.StringIO()
    view = LiveProgress(Console(file=out, force_terminal=True, width=120))

    view.start("j1")
    view.update(update("Running", 75, "test-incrementer-queue", "processing", "Processing"))
    view.update(update("Succeeded", 100, "", "", "Job completed successfully"))
    view.stop()

    text = out.getvalue()
    assert "100%" in text
    assert "test-incrementer-queue (processing)" in text
    assert "Job completed successfully" in text


def test_no_bar_unless_interactive() -> None:
    assert isinstance(choose_view(interactive=False), PlainProgress)
    assert isinstance(choose_view(interactive=True), LiveProgress)


def test_outcome_of_a_success_is_the_result_json_on_stdout() -> None:
    out, err = io.StringIO(), io.StringIO()

    code = print_outcome({"id": "j1", "status": "Succeeded", "result": {"value": 25}}, out, err)

    assert code == 0
    assert json.loads(out.getvalue()) == {"value": 25}
    assert err.getvalue() == "job j1 Succeeded\n"


def test_outcome_of_a_failure_is_the_error_on_stderr() -> None:
    out, err = io.StringIO(), io.StringIO()

    code = print_outcome({"id": "j1", "status": "Failed", "error": "timeout_error: 5s"}, out, err)

    assert code == 1
    assert out.getvalue() == ""
    assert err.getvalue() == "job j1 Failed: timeout_error: 5s\n"
