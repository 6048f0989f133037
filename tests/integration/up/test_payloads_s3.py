"""Results by reference end to end: ``asya up`` on SQS (moto) with the payloads in S3 (moto).
Branch results over 256 KiB reach happy-end and the gateway as references; every way a client
reads the result (``asya call``, ``GET /jobs/{id}``, the SSE final update, MCP) gives the real
payload, the job database keeps only references, and the gateway deletes a finished job's
objects after ``ASYA_PAYLOAD_RETENTION`` but never a running job's
(docs/reference/jobs.md#results-by-reference). A 1 MiB tool argument, over SQS's limit, leaves
the gateway by reference too (docs/reference/jobs.md#arguments-by-reference)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import httpx
import pytest
from mcp import Client

from tests.helpers import wait_until
from tests.integration.up.conftest import (
    BIG_TEXT,
    UpMesh,
    call_over_mcp,
    digest_of,
    digest_tool,
    last_job_of,
    start_mesh,
    stop_mesh,
    write_mesh,
)

pytestmark = pytest.mark.timeout(240)

SIZE = 1024 * 1024  # each branch's result: over the 256 KiB threshold
RETENTION = 4.0
PREFIX = "payloads"


class S3Mesh:
    def __init__(self, mesh: UpMesh, s3: Any, bucket: str) -> None:
        self.mesh = mesh
        self.s3 = s3
        self.bucket = bucket

    def objects(self, job_id: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"{PREFIX}/{job_id}/")
        return [item["Key"] for item in listed.get("Contents", [])]


@pytest.fixture(scope="module")
def s3_mesh(
    tmp_path_factory: pytest.TempPathFactory, sqs_url: str, run_id: str
) -> Iterator[S3Mesh]:
    folder = tmp_path_factory.mktemp("s3-mesh")
    endpoint = dict(parse_qsl(urlsplit(sqs_url).query))["endpoint"]
    bucket = f"asya-test-{run_id}-results"
    s3 = boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    actors = [
        {"name": "make-big", "handler": "handlers.make_big", "timeout": "20s"},
        {"name": "fan-big", "handler": "handlers.fan_big", "timeout": "20s"},
        {"name": "tag-big", "handler": "handlers.tag_big", "timeout": "20s"},
        {"name": "slow-measure", "handler": "handlers.slow_measure", "timeout": "30s"},
        {"name": "digest", "handler": "handlers.digest_text", "timeout": "20s"},
    ]
    size = {"size": {"type": "integer", "required": True}}
    tools = [
        {
            "name": "test_big_fanout",
            "parameters": size,
            "route": ["make-big", "fan-big", "tag-big"],
        },
        {
            "name": "test_slow_big",
            "parameters": {**size, "seconds": {"type": "number", "required": True}},
            "route": ["make-big", "slow-measure"],
        },
        digest_tool("digest"),
    ]
    env = {
        "ASYA_PAYLOAD_STORE_URL": f"s3://{bucket}/{PREFIX}",
        "ASYA_PAYLOAD_RETENTION": f"{RETENTION:g}s",
        "AWS_ENDPOINT_URL": endpoint,
    }
    transport = f"{sqs_url}&prefix=asya-test-{run_id}-s3mesh-"
    write_mesh(folder, {"transport": transport, "env": env, "actors": actors}, tools)
    mesh = start_mesh(folder)
    try:
        yield S3Mesh(mesh, s3, bucket)
    finally:
        stop_mesh(mesh)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.delete_bucket(Bucket=bucket)


def expected_branches() -> list[dict[str, Any]]:
    blob = "b" * SIZE
    return [{"blob": blob, "seconds": 0, "index": i, "seen": True} for i in range(4)]


def sse_final(url: str, job_id: str) -> dict[str, Any]:
    with httpx.stream("GET", f"{url}/jobs/{job_id}/stream", timeout=30) as response:
        events = [
            json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data: {")
        ]
    return dict(events[-1])


async def mcp_get_job(url: str, job_id: str) -> Any:
    async with Client(f"{url}/mcp") as session:
        return await session.call_tool("get_job", {"job_id": job_id})


def test_every_client_gets_the_real_fan_out_result_and_the_database_only_references(
    s3_mesh: S3Mesh,
) -> None:
    mesh = s3_mesh.mesh
    called = mesh.call("test_big_fanout", f"size={SIZE}", timeout=120)
    assert called.returncode == 0, called.stderr + mesh.log()[-3000:]
    assert json.loads(called.stdout) == expected_branches()

    job_id = mesh.submit("test_big_fanout", {"size": SIZE})
    job = mesh.wait_job(job_id, timeout=120)
    assert job["status"] == "Succeeded", job
    assert job["result"] == expected_branches()
    assert sse_final(mesh.url, job_id)["result"] == expected_branches()
    tool_result = asyncio.run(mcp_get_job(mesh.url, job_id))
    assert tool_result.is_error is False
    assert tool_result.structured_content == {"result": expected_branches()}

    # The database keeps four small references, not 4 MiB.
    with sqlite3.connect(mesh.folder / ".asya" / "jobs.db") as db:
        (stored,) = db.execute("SELECT result FROM jobs WHERE id = ?", (job_id,)).fetchone()
        (largest,) = db.execute("SELECT max(length(result)) FROM job_updates").fetchone()
    assert len(stored) < 4096
    assert largest < 4096
    assert all("$asya_payload_ref" in branch for branch in json.loads(stored))
    assert len(s3_mesh.objects(job_id)) == 1 + 4 + 4  # make-big's, fan-big's, tag-big's


def test_retention_deletes_a_finished_jobs_objects_and_keeps_a_running_jobs(
    s3_mesh: S3Mesh,
) -> None:
    mesh = s3_mesh.mesh
    finished_id = mesh.submit("test_big_fanout", {"size": SIZE})
    assert mesh.wait_job(finished_id, timeout=120)["status"] == "Succeeded"
    assert s3_mesh.objects(finished_id)  # kept for the retention after the end
    running_id = mesh.submit("test_slow_big", {"size": SIZE, "seconds": RETENTION * 5})
    wait_until(lambda: s3_mesh.objects(running_id), timeout=60, what="make-big's output")
    written = time.monotonic()

    # The running job's object gets older than the retention (and a sweep), yet is kept.
    time.sleep(RETENTION + 2.0)
    assert httpx.get(f"{mesh.url}/jobs/{running_id}", timeout=10).json()["status"] == "Running"
    assert len(s3_mesh.objects(running_id)) == 1

    # The finished job's objects are gone: its result is now a clear error, not a crash.
    wait_until(lambda: not s3_mesh.objects(finished_id), timeout=30, what="objects deleted")
    shown = httpx.get(f"{mesh.url}/jobs/{finished_id}", timeout=10).json()
    assert shown["status"] == "Succeeded"
    assert shown["result"] is None
    assert shown["error"].startswith("payload_missing: ")
    assert shown["error_details"]["code"] == "payload_missing"
    gone = asyncio.run(mcp_get_job(mesh.url, finished_id))
    assert gone.is_error is True
    assert "payload_missing" in gone.content[0].text  # type: ignore[union-attr]

    assert time.monotonic() - written < RETENTION * 5  # the slow job was running all along
    assert mesh.wait_job(running_id, timeout=60)["result"] == {"length": SIZE}


def test_a_1_mib_tool_argument_reaches_the_handler_intact_through_s3(s3_mesh: S3Mesh) -> None:
    result = call_over_mcp(s3_mesh.mesh, "test_digest", {"text": BIG_TEXT})
    assert result.is_error is False, result.content
    assert result.structured_content == digest_of(BIG_TEXT)
    job_id = last_job_of(s3_mesh.mesh, "test_digest")
    [key] = s3_mesh.objects(job_id)  # the argument, under the job's id; the answer is small
    stored = s3_mesh.s3.get_object(Bucket=s3_mesh.bucket, Key=key)["Body"].read()
    assert json.loads(stored) == {"text": BIG_TEXT}
