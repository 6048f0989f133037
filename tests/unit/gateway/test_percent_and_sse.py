"""Progress arithmetic and SSE wire formatting."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from asya.gateway.models import JobUpdate
from asya.gateway.percent import step_percent
from asya.gateway.sse import KEEPALIVE, parse_last_event_id, status_event, update_event


@pytest.mark.parametrize(
    ("index", "status", "expected"),
    [
        (0, "received", 5),
        (0, "processing", 25),
        (0, "completed", 50),
        (1, "received", 55),
        (1, "processing", 75),
        (1, "completed", 100),
    ],
)
def test_two_step_checkpoints_follow_the_spec_formula(
    index: int, status: str, expected: float
) -> None:
    assert step_percent(index, 2, status) == expected


def test_one_step_and_three_step_routes() -> None:
    assert [step_percent(0, 1, s) for s in ("received", "processing", "completed")] == [10, 50, 100]
    assert step_percent(2, 3, "processing") == pytest.approx(250 / 3)


def test_the_percent_is_clamped_to_0_100() -> None:
    assert step_percent(5, 2, "completed") == 100
    assert step_percent(0, 0, "completed") == 0


def _update(**overrides: object) -> JobUpdate:
    values: dict[str, object] = {
        "job_id": "j1",
        "sequence": 7,
        "status": "Running",
        "message": "Received message (1.23 KB)",
        "result": None,
        "error": None,
        "progress_percent": 55.0,
        "step": "b",
        "step_status": "received",
        "timestamp": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    }
    values.update(overrides)
    return JobUpdate(**values)  # type: ignore[arg-type]


def test_a_status_event_carries_the_status_string() -> None:
    assert status_event("Running") == b"event: status\ndata: Running\n\n"


def test_an_update_event_has_id_event_and_every_data_field() -> None:
    raw = update_event(_update()).decode()
    lines = raw.split("\n")
    assert lines[0] == "id: 7"
    assert lines[1] == "event: update"
    assert lines[2].startswith("data: ")
    assert raw.endswith("\n\n")
    data = orjson.loads(lines[2][len("data: ") :])
    assert data == {
        "job_id": "j1",
        "status": "Running",
        "message": "Received message (1.23 KB)",
        "result": None,
        "error": None,
        "progress_percent": 55.0,
        "step": "b",
        "step_status": "received",
        "timestamp": "2026-01-02T03:04:05.000000Z",
        "error_details": None,
    }


def test_a_multiline_result_stays_on_one_data_line() -> None:
    raw = update_event(_update(result={"text": "a\nb"})).decode()
    assert raw.count("\n") == 4


def test_keepalive_is_a_comment() -> None:
    assert KEEPALIVE.startswith(b":")
    assert KEEPALIVE.endswith(b"\n\n")


@pytest.mark.parametrize(
    ("value", "expected"), [(None, 0), ("", 0), ("4", 4), (" 12 ", 12), ("x", 0), ("-3", 0)]
)
def test_last_event_id_parsing(value: str | None, expected: int) -> None:
    assert parse_last_event_id(value) == expected


def test_updates_survive_the_notify_round_trip() -> None:
    update = _update(result=[1, 2])
    assert JobUpdate.from_wire(orjson.loads(orjson.dumps(update.to_wire()))) == update
