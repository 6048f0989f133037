"""The route the store builds for a new job: it is what the first actor receives
(docs/reference/jobs.md#fields)."""

from __future__ import annotations

from datetime import datetime

from asya.gateway.publisher import job_message
from asya.gateway.store import JobStore


async def test_a_job_with_a_timeout_carries_its_job_id_and_rfc3339_deadline(
    database_url: str,
) -> None:
    store = JobStore(database_url)
    try:
        await store.migrate()
        job = await store.create_job(
            job_id="5b1f3a9e-0000-4000-8000-000000000001",
            tool="t",
            steps=["a", "b"],
            metadata={"job_id": "5b1f3a9e-0000-4000-8000-000000000001"},
            payload={"v": 1},
            timeout_seconds=10,
        )
        message = job_message(job)
        metadata = message["route"]["metadata"]
        assert message["job_id"] == job.id
        assert message["route"]["steps"] == ["a", "b"]
        assert message["route"]["current"] == 0
        assert metadata["job_id"] == job.id
        assert metadata["deadline"].endswith("Z")
        deadline = datetime.fromisoformat(metadata["deadline"])
        assert 9 <= (deadline - job.created_at).total_seconds() <= 11
    finally:
        await store.close()


async def test_a_job_without_a_timeout_has_no_deadline_in_its_route(database_url: str) -> None:
    store = JobStore(database_url)
    try:
        await store.migrate()
        job = await store.create_job(
            job_id="5b1f3a9e-0000-4000-8000-000000000002",
            tool="t",
            steps=["a"],
            metadata={"job_id": "5b1f3a9e-0000-4000-8000-000000000002"},
            payload=None,
            timeout_seconds=None,
        )
        assert job_message(job)["route"]["metadata"] == {"job_id": job.id}
    finally:
        await store.close()
