"""Which jobs' payloads the retention deletes: a known job once it has been over for the
retention, never while it runs; anything else by the age of its newest object."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path

from asya.payloads.retention import expired_jobs, sweep_jobs_once
from asya.payloads.stores import FileStore

NOW = 10_000.0
DAY = 86_400.0


def test_a_job_that_ended_longer_ago_than_the_retention_is_expired() -> None:
    written = {"ended-long-ago": NOW - 50, "ended-just-now": NOW - 50}
    ended = {"ended-long-ago": NOW - 20, "ended-just-now": NOW - 5}
    assert expired_jobs(written, ended, NOW, retention=10) == ["ended-long-ago"]


def test_a_running_job_keeps_its_objects_however_old() -> None:
    assert expired_jobs({"running": NOW - 5 * DAY}, {"running": None}, NOW, retention=10) == []


def test_objects_no_gateway_can_date_go_by_age() -> None:
    written = {"_nojob": NOW - 20, "unknown-job": NOW - 20, "fresh": NOW - 1}
    assert expired_jobs(written, {}, NOW, retention=10) == ["_nojob", "unknown-job"]


def test_a_sweep_deletes_the_expired_jobs_objects(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    key = "0123456789abcdef" * 2
    store.put(f"done/{key}", b"x")
    store.put(f"running/{key}", b"x")

    async def job_ends(jobs: list[str]) -> Mapping[str, float | None]:
        assert sorted(jobs) == ["done", "running"]
        return {"done": 0.0, "running": None}

    assert asyncio.run(sweep_jobs_once(store, 60, job_ends)) == 1
    assert set(store.job_times()) == {"running"}
