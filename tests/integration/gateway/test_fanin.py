"""Fan-out jobs through a served gateway (docs/reference/jobs.md#fan-out), on SQLite and
PostgreSQL: the branches' own final reports decide when the job ends and what its result is."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from tests.integration.gateway.conftest import (
    RunningGateway,
    eventually,
    read_events,
    serve_gateway,
)


def branch(*levels: tuple[int, int]) -> list[dict[str, int]]:
    return [{"index": index, "count": count} for index, count in levels]


async def final(gateway: RunningGateway, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await gateway.client.post(f"/jobs/{job_id}/final", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def progress(
    gateway: RunningGateway, job_id: str, index: int, status: str, levels: list[dict[str, int]]
) -> float:
    response = await gateway.client.post(
        f"/jobs/{job_id}/progress",
        json={
            "step": "step-b",
            "step_index": index,
            "total_steps": 2,
            "status": status,
            "branch": levels,
        },
    )
    assert response.status_code == 200, response.text
    percent: float = response.json()["progress_percent"]
    return percent


def succeeded(result: Any, *levels: tuple[int, int]) -> dict[str, Any]:
    return {"status": "succeeded", "result": result, "branch": branch(*levels)}


async def test_fan_out_of_10_ends_with_every_result_in_branch_order(
    gateway: RunningGateway,
) -> None:
    job_id = await gateway.call("test_pipeline", value=1)
    order = list(range(10))
    random.Random(3).shuffle(order)
    percents = []
    for seen, index in enumerate(order, start=1):
        await final(gateway, job_id, succeeded({"n": index}, (index, 10)))
        job = await gateway.job(job_id)
        percents.append(job["progress_percent"])
        if seen < 10:
            assert job["status"] == "Running"
            assert job["progress_percent"] < 100
    assert percents == sorted(percents)
    assert percents[-1] == 100
    job = await gateway.job(job_id)
    assert job["status"] == "Succeeded"
    assert job["result"] == [{"n": index} for index in range(10)]


async def test_nested_fan_out_3_by_4_flattens_depth_first(gateway: RunningGateway) -> None:
    job_id = await gateway.call("test_pipeline", value=1)
    leaves = [(i, j) for i in range(3) for j in range(4)]
    random.Random(5).shuffle(leaves)
    for i, j in leaves:
        await final(gateway, job_id, succeeded(f"{i}.{j}", (i, 3), (j, 4)))
    job = await gateway.job(job_id)
    assert job["status"] == "Succeeded"
    assert job["result"] == [f"{i}.{j}" for i in range(3) for j in range(4)]


async def test_a_repeated_final_of_one_branch_changes_nothing(gateway: RunningGateway) -> None:
    job_id = await gateway.call("test_pipeline", value=1)
    await final(gateway, job_id, succeeded("a", (0, 2)))
    await final(gateway, job_id, succeeded("a", (0, 2)))
    await final(gateway, job_id, {"status": "failed", "error": "late", "branch": branch((0, 2))})
    assert (await gateway.job(job_id))["status"] == "Running"
    await final(gateway, job_id, succeeded("b", (1, 2)))
    job = await gateway.job(job_id)
    assert (job["status"], job["result"]) == ("Succeeded", ["a", "b"])


async def test_a_branch_that_fanned_out_to_nothing_closes_its_part(
    gateway: RunningGateway,
) -> None:
    job_id = await gateway.call("test_pipeline", value=1)
    await final(gateway, job_id, succeeded("x", (0, 2), (0, 1)))
    await final(gateway, job_id, succeeded({"empty": True}, (1, 2)))
    job = await gateway.job(job_id)
    assert job["status"] == "Succeeded"
    assert job["result"] == ["x", {"empty": True}]


async def test_branch_2_of_5_failing_fails_the_job_once_all_ended(
    gateway: RunningGateway,
) -> None:
    job_id = await gateway.call("test_pipeline", value=1)
    await final(
        gateway,
        job_id,
        {
            "status": "failed",
            "error": "processing_error: bad word",
            "error_details": {"failed_step": "step-b", "type": "ValueError"},
            "branch": branch((2, 5)),
        },
    )
    assert (await gateway.job(job_id))["status"] == "Running"
    for index in (4, 0, 3, 1):
        await final(gateway, job_id, succeeded(index, (index, 5)))
    job = await gateway.job(job_id)
    assert job["status"] == "Failed"
    assert job["result"] == [0, 1, None, 3, 4]
    assert job["error"] == (
        "1 of 5 branches failed; first: branch 2/5 at step 'step-b': processing_error: bad word"
    )


async def test_branch_progress_is_monotonic_and_below_100_until_the_end(
    gateway: RunningGateway,
) -> None:
    job_id = await gateway.call("test_pipeline", value=1)
    assert await gateway.progress(job_id, 0, "completed") == 50
    seen = []
    for index in range(4):
        for status in ("received", "processing"):
            seen.append(await progress(gateway, job_id, 1, status, branch((index, 4))))
        await final(gateway, job_id, succeeded(index, (index, 4)))
        seen.append((await gateway.job(job_id))["progress_percent"])
    assert seen == sorted(seen)
    assert all(percent < 100 for percent in seen[:-1])
    assert seen[-1] == 100


async def test_a_fan_out_at_the_last_step_is_below_100_until_its_branches_end(
    gateway: RunningGateway,
) -> None:
    job_id = await gateway.call("test_pipeline", value=1)
    response = await gateway.client.post(
        f"/jobs/{job_id}/progress",
        json={
            "step": "step-b",
            "step_index": 1,
            "total_steps": 2,
            "status": "completed",
            "outputs": 3,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["progress_percent"] == 75  # the step counts as still processing
    for index in range(3):
        job = await gateway.job(job_id)
        assert job["status"] == "Running"
        assert job["progress_percent"] < 100
        await final(gateway, job_id, succeeded(index, (index, 3)))
    job = await gateway.job(job_id)
    assert (job["status"], job["progress_percent"], job["result"]) == ("Succeeded", 100, [0, 1, 2])


async def test_progress_and_branch_ends_show_their_branch_in_updates_and_sse(
    gateway: RunningGateway,
) -> None:
    job_id = await gateway.call("test_pipeline", value=1)

    async def run_branches() -> None:
        for index in range(3):
            await progress(gateway, job_id, 1, "received", branch((index, 3)))
            await final(gateway, job_id, succeeded(index, (index, 3)))

    events = await read_events(gateway.client, job_id, on_open=run_branches)
    data = [event.json() for event in events if event.data.startswith("{")]
    branch_ends = [d for d in data if (d.get("message") or "").startswith("Branch ")]
    assert [d["message"] for d in branch_ends] == [
        "Branch 0/3 succeeded (1 of 3 ended)",
        "Branch 1/3 succeeded (2 of 3 ended)",
    ]
    assert [d["branch"] for d in branch_ends] == [branch((0, 3)), branch((1, 3))]
    received = [d for d in data if d.get("step_status") == "received"]
    assert [d["branch"] for d in received] == [branch((i, 3)) for i in range(3)]
    assert data[-1]["status"] == "Succeeded"
    assert data[-1]["branch"] == branch((2, 3))


async def test_a_final_without_branch_still_ends_the_job_as_before(
    gateway: RunningGateway,
) -> None:
    job_id = await gateway.call("test_pipeline", value=1)
    await final(gateway, job_id, {"status": "succeeded", "result": {"value": 7}})
    job = await gateway.job(job_id)
    assert (job["status"], job["result"], job["progress_percent"]) == (
        "Succeeded",
        {"value": 7},
        100,
    )


async def test_a_malformed_branch_is_a_400(gateway: RunningGateway) -> None:
    job_id = await gateway.call("test_pipeline", value=1)
    for bad in ("0/2", [{"index": 3, "count": 2}], [{"index": 0}]):
        response = await gateway.client.post(
            f"/jobs/{job_id}/final", json={"status": "succeeded", "branch": bad}
        )
        assert response.status_code == 400, response.text


async def test_finals_spread_over_two_replicas_and_a_restart_lose_nothing(
    fresh_postgres_url: str,
) -> None:
    async with serve_gateway(fresh_postgres_url) as first:
        job_id = await first.call("test_pipeline", value=1)
        broker = first.broker
        for index in range(3):
            await final(first, job_id, succeeded(index, (index, 12)))
    # restart: a new gateway process state on the same database
    async with (
        serve_gateway(fresh_postgres_url) as one,
        serve_gateway(fresh_postgres_url) as two,
    ):
        del broker
        replicas = [one, two]
        await asyncio.gather(
            *(
                final(replicas[index % 2], job_id, succeeded(index, (index, 12)))
                for index in range(3, 12)
            )
        )

        async def done() -> dict[str, Any] | None:
            job = await two.job(job_id)
            return job if job["status"] == "Succeeded" else None

        job = await eventually(done)
        assert job["result"] == list(range(12))
        assert (await one.job(job_id))["status"] == "Succeeded"
