"""The in-process fan-out hub and the job's JSON shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asya.gateway.hub import Hub
from asya.gateway.models import Job, JobUpdate
from asya.gateway.publisher import job_message

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def _update(job_id: str, sequence: int) -> JobUpdate:
    return JobUpdate(job_id, sequence, "Running", "m", None, None, 5.0, "a", "received", NOW)


async def test_subscribers_get_only_their_jobs_updates_and_leave_no_trace() -> None:
    hub = Hub()
    async with (
        hub.subscribe("a") as first,
        hub.subscribe("a") as second,
        hub.subscribe("b") as other,
    ):
        assert hub.subscriber_count == 3
        await hub.publish(_update("a", 1))
        await hub.publish(_update("c", 1))  # nobody listens: dropped
        assert first.get_nowait().sequence == 1
        assert second.get_nowait().sequence == 1
        assert other.empty()
    assert hub.subscriber_count == 0
    assert hub.watched_jobs() == []


def _job(**overrides: object) -> Job:
    values: dict[str, object] = {
        "id": "j",
        "tool": "t",
        "status": "Running",
        "route": {"steps": ["a"], "current": 0, "metadata": {"job_id": "j"}},
        "payload": {"v": 1},
        "result": None,
        "error": None,
        "message": None,
        "timeout_seconds": 10.0,
        "deadline": NOW + timedelta(seconds=10),
        "progress_percent": 0.0,
        "current_step": None,
        "steps_completed": 0,
        "total_steps": 1,
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(overrides)
    return Job(**values)  # type: ignore[arg-type]


def test_a_job_is_active_until_terminal_or_past_its_deadline() -> None:
    assert _job().active(NOW)
    assert not _job().active(NOW + timedelta(seconds=10))
    assert not _job(status="Succeeded").active(NOW)
    assert _job(deadline=None).active(NOW + timedelta(days=1))


def test_the_job_json_has_the_spec_fields_then_error_details_with_rfc3339_times() -> None:
    data = _job().to_json()
    assert list(data) == [
        "id",
        "tool",  # not in the original's job; an optional addition
        "status",
        "route",
        "payload",
        "result",
        "error",
        "timeout_seconds",
        "deadline",
        "progress_percent",
        "current_step",
        "steps_completed",
        "total_steps",
        "created_at",
        "updated_at",
        "error_details",
    ]
    assert data["created_at"] == "2026-05-01T12:00:00.000000Z"
    assert data["deadline"] == "2026-05-01T12:00:10.000000Z"


def test_the_first_message_follows_the_spec_shape() -> None:
    metadata = {"job_id": "j", "deadline": "2026-05-01T12:00:10.000000Z"}
    job = _job(route={"steps": ["a", "b"], "current": 0, "metadata": metadata})
    assert job_message(job) == {
        "job_id": "j",
        "route": {
            "steps": ["a", "b"],
            "current": 0,
            "metadata": {"job_id": "j", "deadline": "2026-05-01T12:00:10.000000Z"},
        },
        "payload": {"v": 1},
    }


async def test_closing_the_hub_ends_current_and_later_subscriptions() -> None:
    hub = Hub()
    async with hub.subscribe("a") as current:
        hub.close()
        assert current.get_nowait() is None
        async with hub.subscribe("b") as later:
            assert later.get_nowait() is None
