"""The crew in the mesh: outcomes persisted to S3 (moto's server) under the layout of
docs/reference/crew.md#storage-layout."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.integration.gateway_vs_actors.mesh import Mesh, create_job, s3_client, wait_terminal


def stored_object(mesh: Mesh, prefix: str, step: str, job_id: str, around: datetime) -> Any:
    """The object at ``{prefix}{YYYY-MM-DD}/{HH}/{step}/{job_id}.json`` (this or the last hour)."""
    client = s3_client(mesh.s3_endpoint)
    for moment in (around, around - timedelta(hours=1)):
        key = f"{prefix}{moment:%Y-%m-%d}/{moment:%H}/{step}/{job_id}.json"
        listed = client.list_objects_v2(Bucket=mesh.s3_bucket, Prefix=key)
        if listed.get("KeyCount"):
            return json.loads(client.get_object(Bucket=mesh.s3_bucket, Key=key)["Body"].read())
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=mesh.s3_bucket).get("Contents", [])]
    raise AssertionError(f"no object for job {job_id} under {prefix}…/{step}/; bucket has {keys}")


async def test_happy_end_persists_the_finished_message_under_the_last_step(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    job_id = await create_job(client, "test_pipeline", {"value": 3})
    job = await wait_terminal(client, job_id)

    stored = stored_object(
        mesh, "asya-results/", mesh.queue("incrementer"), job_id, datetime.now(UTC)
    )

    assert job["status"] == "Succeeded"
    assert stored["job_id"] == job_id
    assert stored["payload"] == {"value": 11}
    assert stored["route"]["steps"] == [mesh.queue("doubler"), mesh.queue("incrementer")]
    assert stored["route"]["current"] == 2


async def test_error_end_persists_the_error_message_under_the_failed_step(
    client: httpx.AsyncClient, mesh: Mesh
) -> None:
    job_id = await create_job(client, "test_error", {"reason": "persist me"})
    job = await wait_terminal(client, job_id)

    stored = stored_object(mesh, "asya-errors/", mesh.queue("error"), job_id, datetime.now(UTC))

    assert job["status"] == "Failed"
    assert stored["job_id"] == job_id
    assert stored["error"] == "processing_error"
    assert stored["error_details"]["message"] == "Simulated failure: persist me"
    assert stored["error_details"]["type"] == "ValueError"
    assert stored["failed_step"] == mesh.queue("error")
    assert json.loads(stored["original_message"])["payload"] == {"reason": "persist me"}
