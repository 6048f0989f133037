"""Fan-out jobs end to end (docs/reference/jobs.md#fan-out): real sidecars, runtimes and crew on
RabbitMQ, the gateway on PostgreSQL. ``split`` fans out, ``upper`` works on each branch."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from tests.integration.gateway_vs_actors.mesh import (
    Mesh,
    SseEvent,
    create_job,
    iter_sse,
    wait_terminal,
)

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def crew_warnings(mesh: Mesh, job_id: str) -> list[str]:
    """Warning lines of the crew (and the ``dropping …`` ones, whichever job they were for)."""
    lines = []
    for role in ("happy-end", "error-end"):
        text = mesh.actors[role].log_path.read_text(errors="replace")
        lines += [
            line
            for line in text.splitlines()
            if "dropping a message" in line or ("WARNING" in line and job_id in line)
        ]
    return lines


async def follow(client: httpx.AsyncClient, job_id: str, into: list[SseEvent]) -> None:
    with contextlib.suppress(httpx.HTTPError):
        async with client.stream("GET", f"/jobs/{job_id}/stream") as response:
            async for event in iter_sse(response):
                into.append(event)


def percents(events: list[SseEvent]) -> list[float]:
    found = []
    for event in events:
        if event.event == "update":
            percent = event.json().get("progress_percent")
            if percent is not None:
                found.append(percent)
    return found


async def test_fan_out_of_10_answers_every_branch_in_order(mesh: Mesh) -> None:
    async with httpx.AsyncClient(base_url=mesh.url, timeout=30) as client:
        job_id = await create_job(client, "test_fanout", {"parts": WORDS})
        events: list[SseEvent] = []
        follower = asyncio.create_task(follow(client, job_id, events))
        job = await wait_terminal(client, job_id, within=60)
        await asyncio.wait_for(follower, 10)

    assert job["status"] == "Succeeded", job
    assert job["result"] == [{"word": word.upper()} for word in WORDS]
    assert job["progress_percent"] == 100
    seen = percents(events)
    assert seen == sorted(seen), seen
    assert seen.count(100) == 1
    assert seen[-1] == 100
    branch_ends = [e.json() for e in events if e.event == "update" and "branch" in e.json()]
    assert len({str(update["branch"]) for update in branch_ends}) == 10
    assert crew_warnings(mesh, job_id) == []


async def test_nested_fan_out_3_by_4_gives_12_results_in_order(mesh: Mesh) -> None:
    parts = [[f"w{i}{j}" for j in range(4)] for i in range(3)]
    async with httpx.AsyncClient(base_url=mesh.url, timeout=30) as client:
        job_id = await create_job(client, "test_fanout_nested", {"parts": parts})
        job = await wait_terminal(client, job_id, within=60)

    assert job["status"] == "Succeeded", job
    assert job["result"] == [{"word": f"W{i}{j}"} for i in range(3) for j in range(4)]
    assert crew_warnings(mesh, job_id) == []


async def test_branch_2_of_5_failing_fails_the_job_and_keeps_the_others(mesh: Mesh) -> None:
    words = ["a", "b", "fail", "d", "e"]
    async with httpx.AsyncClient(base_url=mesh.url, timeout=30) as client:
        job_id = await create_job(client, "test_fanout", {"parts": words})
        job = await wait_terminal(client, job_id, within=60)

    assert job["status"] == "Failed", job
    assert job["result"] == [{"word": "A"}, {"word": "B"}, None, {"word": "D"}, {"word": "E"}]
    assert job["error"].startswith(
        f"1 of 5 branches failed; first: branch 2/5 at step '{mesh.queue('upper')}': "
        "processing_error: cannot upper the word 'fail'"
    )
    assert crew_warnings(mesh, job_id) == []


async def test_a_message_without_branch_finishes_its_job_as_before(mesh: Mesh) -> None:
    async with httpx.AsyncClient(base_url=mesh.url, timeout=30) as client:
        job_id = await create_job(client, "test_fanout", {"parts": ["only"]})
        job = await wait_terminal(client, job_id, within=30)

    assert job["status"] == "Succeeded"
    assert job["result"] == {"word": "ONLY"}  # one output: no fan-out, today's single result


async def test_a_gateway_killed_mid_fan_out_loses_nothing(mesh: Mesh) -> None:
    async with httpx.AsyncClient(base_url=mesh.url, timeout=30) as client:
        job_id = await create_job(client, "test_fanout", {"parts": WORDS, "delay": 0.4})
        await asyncio.sleep(1.5)
        assert mesh.gateway.proc is not None
        mesh.gateway.proc.kill()  # kill -9: nothing flushed, nothing said goodbye
        await asyncio.to_thread(mesh.gateway.proc.wait, 10)
        mesh.gateway.start()
        await asyncio.to_thread(mesh.gateway.wait_ready, 60.0)
        job = await wait_terminal(client, job_id, within=60)

    assert job["status"] == "Succeeded", job
    assert job["result"] == [{"word": word.upper()} for word in WORDS]
