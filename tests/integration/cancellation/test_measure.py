"""Measurement, not a check (run with ``ASYA_MEASURE_CANCEL=1 pytest -s`` on this file): the time
from ``POST /jobs/{id}/cancel`` to the in-flight handler being stopped, p50/p99 over 50 jobs, and
the runtime calls of the cancelled jobs after their cancel."""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import pytest

from tests.helpers import wait_until
from tests.integration.cancellation.mesh import (
    CancelMesh,
    cancelled_count,
    new_tag,
    wait_pid_gone,
)
from tests.integration.cancellation.test_cancel_along_route import cancel, create

JOBS = 50
LATER_MESSAGES = 2  # published after each cancel, as fan-out branches would be

pytestmark = pytest.mark.skipif(
    os.environ.get("ASYA_MEASURE_CANCEL") != "1", reason="a measurement: ASYA_MEASURE_CANCEL=1"
)


async def test_measure_cancel_latency_and_calls_after_the_cancel(cancel_mesh: CancelMesh) -> None:
    mesh = cancel_mesh
    actor = mesh.start_actor()
    url = mesh.gateways[0].url
    latencies: list[float] = []
    tags: list[str] = []
    for _ in range(JOBS):
        tag = new_tag()
        job_id = await create(url, tag)
        worker = await asyncio.to_thread(mesh.wait_call, tag)
        started = time.perf_counter()
        await cancel(url, job_id)
        await wait_pid_gone(worker, within=10)
        latencies.append(time.perf_counter() - started)
        for _ in range(LATER_MESSAGES):
            await mesh.publish_job_message(job_id, {"tag": tag, "seconds": 0})
        tags.append(tag)
    dropped = JOBS * (1 + LATER_MESSAGES)
    await asyncio.to_thread(
        wait_until, lambda: cancelled_count(actor) >= dropped, timeout=60, what="every drop"
    )
    calls_after = sum(len(mesh.calls(tag)) - 1 for tag in tags)
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    print(
        f"\n{mesh.database_url.split(':')[0]}: cancel → handler stopped over {JOBS} jobs: "
        f"p50 {cuts[49] * 1000:.0f} ms, p99 {cuts[98] * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms; runtime calls after the cancel: {calls_after} "
        f"(of {JOBS * LATER_MESSAGES} later messages)"
    )
    assert calls_after == 0
