"""POST /jobs/{id}/cancel and the sidecars' GET /cancellations stream, on SQLite and PostgreSQL,
with one gateway and with two replicas on one database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import orjson

from tests.integration.gateway.conftest import RunningGateway, read_events, serve_gateway


async def test_cancel_makes_a_running_job_cancelled_for_good(gateway: RunningGateway) -> None:
    job_id = await gateway.call("test_pipeline", value=1)
    await gateway.progress(job_id, 0, "processing")

    response = await gateway.client.post(f"/jobs/{job_id}/cancel")

    assert response.status_code == 200, response.text
    assert response.json()["id"] == job_id
    assert response.json()["status"] == "Cancelled"
    late = await gateway.client.post(
        f"/jobs/{job_id}/final", json={"status": "succeeded", "result": {"value": 3}}
    )
    assert late.json()["job_status"] == "Cancelled"
    job = await gateway.job(job_id)
    assert job["status"] == "Cancelled"
    assert job["result"] is None
    again = await gateway.client.post(f"/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert again.json() == {"error": "job already Cancelled"}
    assert (await gateway.client.get(f"/jobs/{job_id}/active")).status_code == 410
    listed = (await gateway.client.get("/jobs", params={"status": "cancelled"})).json()["jobs"]
    assert job_id in [item["id"] for item in listed]
    events = await read_events(gateway.client, job_id)
    assert events[0].data == "Cancelled"
    assert events[-1].json()["status"] == "Cancelled"
    assert events[-1].json()["message"] == "Job cancelled"


async def test_cancel_of_an_ended_or_unknown_job_is_refused(gateway: RunningGateway) -> None:
    job_id = await gateway.call("test_echo", message="hi")
    await gateway.client.post(f"/jobs/{job_id}/final", json={"status": "succeeded", "result": 1})

    ended = await gateway.client.post(f"/jobs/{job_id}/cancel")
    unknown = await gateway.client.post("/jobs/no-such-job/cancel")

    assert ended.status_code == 409
    assert ended.json() == {"error": "job already Succeeded"}
    assert (await gateway.job(job_id))["status"] == "Succeeded"
    assert unknown.status_code == 404


async def test_cancel_needs_a_client_key_and_the_stream_the_actor_token(
    database_url: str,
) -> None:
    async with serve_gateway(
        database_url, api_keys=("client-key",), actor_token="actor-token"
    ) as gateway:
        headers = {"Authorization": "Bearer client-key"}
        created = await gateway.client.post(
            "/tools/call",
            json={"name": "test_echo", "arguments": {"message": "x"}},
            headers=headers,
        )
        job_id = created.json()["structuredContent"]["job_id"]
        assert (await gateway.client.post(f"/jobs/{job_id}/cancel")).status_code == 401
        cancelled = await gateway.client.post(f"/jobs/{job_id}/cancel", headers=headers)
        assert cancelled.status_code == 200
        refused = await gateway.client.get("/cancellations", headers=headers)
        assert refused.status_code == 401
        async with cancellations(gateway, token="actor-token") as stream:
            assert job_id in await stream.next_ids()


class CancellationStream:
    def __init__(self, lines: AsyncIterator[str]) -> None:
        self._lines = lines

    async def next_ids(self, limit: float = 5.0) -> list[str]:
        """The ids of the next ``cancelled`` event."""
        async with asyncio.timeout(limit):
            event = ""
            async for line in self._lines:
                if line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:") and event == "cancelled":
                    ids: list[str] = orjson.loads(line.partition(":")[2])["job_ids"]
                    return ids
        raise AssertionError("the stream ended")


@contextlib.asynccontextmanager
async def cancellations(
    gateway: RunningGateway, token: str | None = None
) -> AsyncIterator[CancellationStream]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx.AsyncClient(base_url=gateway.url, timeout=30) as client,
        client.stream("GET", "/cancellations", headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield CancellationStream(response.aiter_lines())


async def test_a_new_stream_starts_with_recent_cancels_then_gets_live_ones(
    gateway: RunningGateway,
) -> None:
    before = await gateway.call("test_echo", message="a")
    await gateway.client.post(f"/jobs/{before}/cancel")

    async with cancellations(gateway) as stream:
        assert before in await stream.next_ids()
        after = await gateway.call("test_echo", message="b")
        await gateway.client.post(f"/jobs/{after}/cancel")
        assert await stream.next_ids() == [after]


async def test_every_replica_streams_a_cancel_made_on_another(database_url: str) -> None:
    async with (
        serve_gateway(database_url) as first,
        serve_gateway(database_url) as second,
        cancellations(first) as stream,
    ):
        await stream.next_ids()  # the recent ones
        job_id = await second.call("test_echo", message="x")
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await second.client.post(f"/jobs/{job_id}/cancel")).status_code == 200

        assert job_id in await stream.next_ids(limit=5)
        assert loop.time() - started < 2.5  # NOTIFY at once; SQLite's poll within a second
