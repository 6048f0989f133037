"""Cancelled jobs: their messages never reach the runtime, and a call in the runtime when the
cancel arrives ends with nothing sent on (docs/reference/sidecar.md#cancellation)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from asya.sidecar.cancellations import CancellationFollower, CancelledJobs

from .conftest import Harness, make_message
from .test_metrics import samples

pytestmark = pytest.mark.timeout(30)


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    for _ in range(int(within / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition did not come true in time")


def processed(harness: Harness, status: str) -> float:
    assert harness.sidecar is not None
    found = samples(harness.sidecar.metrics.exposition().decode())
    key = (
        "asya_actor_messages_processed_total",
        frozenset({"queue": "step-a", "status": status}.items()),
    )
    return found.get(key, 0.0)


async def test_messages_of_a_cancelled_job_are_acked_without_calling_the_runtime(
    harness: Harness,
) -> None:
    sidecar = await harness.start()
    sidecar.cancelled.add(["gone"])
    await harness.send(make_message(["step-a", "step-b"], job_id="gone"))
    await harness.send(make_message(["step-a", "step-b"], job_id="kept"))

    out = await harness.take("step-b")

    assert out["job_id"] == "kept"
    assert [b"kept" in request for request in harness.runtime.requests] == [True]
    assert await harness.depth("step-a") == 0
    assert await harness.depth("error-end") == 0
    assert processed(harness, "cancelled") == 1


async def test_a_cancel_during_the_runtime_call_drops_its_results(harness: Harness) -> None:
    release = asyncio.Event()

    async def slow(message: dict[str, Any]) -> Any:
        await release.wait()
        return [message]

    harness.runtime.behaviour = slow
    sidecar = await harness.start()
    await harness.send(make_message(["step-a", "step-b"], job_id="j1"))
    await harness.runtime.wait_requests(1)

    sidecar.cancelled.add(["j1"])
    release.set()

    await eventually(lambda: processed(harness, "cancelled") == 1)
    assert await harness.depth("step-b") == 0
    assert await harness.depth("happy-end") == 0
    assert await harness.depth("error-end") == 0


async def test_the_follower_fills_the_set_from_the_gateway_stream() -> None:
    body = (
        b'event: cancelled\ndata: {"job_ids": ["a", "b"]}\n\n'
        b": keep-alive\n\n"
        b'event: cancelled\ndata: {"job_ids": ["c"]}\n\n'
    )
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    cancelled = CancelledJobs()
    follower = CancellationFollower(
        "http://gateway", "actor-token", cancelled, transport=httpx.MockTransport(answer)
    )
    task = asyncio.create_task(follower.run())
    try:
        await asyncio.wait_for(cancelled.synced.wait(), 5)
        await eventually(lambda: "c" in cancelled)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert all(job in cancelled for job in ("a", "b", "c"))
    assert "d" not in cancelled
    assert seen[0].url.path == "/cancellations"
    assert seen[0].headers["authorization"] == "Bearer actor-token"


async def test_an_unreachable_gateway_leaves_the_sidecar_processing(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    await harness.start(gateway_url="http://127.0.0.1:9", is_terminal=False)
    await harness.send(make_message(["step-a", "step-b"], job_id="j1"))

    out = await harness.take("step-b", within=10)

    assert out["job_id"] == "j1"
    assert "cannot follow cancellations" in caplog.text
