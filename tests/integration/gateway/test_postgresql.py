"""PostgreSQL-only behaviour: concurrent reports, replicas sharing streams, restarts, outages."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg

from tests.integration.gateway.conftest import eventually, read_events, serve_gateway


async def test_concurrent_progress_posts_never_lose_an_update_or_lower_the_percent(
    postgres_url: str,
) -> None:
    async with serve_gateway(postgres_url) as gateway:
        job_id = await gateway.call("test_pipeline", value=1)
        reports = [
            (index, status)
            for index in range(10)
            for status in ("received", "processing", "completed")
        ]
        random.shuffle(reports)
        results = await asyncio.gather(
            *(gateway.progress(job_id, index, status, total=10) for index, status in reports)
        )
        assert max(results) == 100
        conn = await asyncpg.connect(postgres_url)
        try:
            rows = await conn.fetch(
                "SELECT sequence, progress_percent, step_status FROM job_updates "
                "WHERE job_id = $1 ORDER BY sequence",
                job_id,
            )
        finally:
            await conn.close()
        sequences = [row["sequence"] for row in rows]
        assert sequences == list(range(1, len(reports) + 2))  # + "Sending message" update
        percents = [row["progress_percent"] for row in rows if row["step_status"]]
        assert len(percents) == len(reports)
        assert percents == sorted(percents)
        assert percents[-1] == 100
        assert (await gateway.job(job_id))["progress_percent"] == 100


async def test_two_gateways_on_one_database_deliver_each_others_updates_to_sse(
    postgres_url: str,
) -> None:
    async with serve_gateway(postgres_url) as first, serve_gateway(postgres_url) as second:
        job_id = await first.call("test_pipeline", value=10)
        opened = asyncio.Event()
        reader = asyncio.create_task(read_events(second.client, job_id, on_open=opened.set))
        await asyncio.wait_for(opened.wait(), 10)
        for index in (0, 1):
            for status in ("received", "processing", "completed"):
                await first.progress(job_id, index, status)
        # a result too big for a NOTIFY payload is fetched from the database by the listener
        result = {"value": 25, "blob": "x" * 20000}
        await first.client.post(
            f"/jobs/{job_id}/final", json={"status": "succeeded", "result": result}
        )
        events = await asyncio.wait_for(reader, 15)
        percents = [event.json()["progress_percent"] for event in events[1:]]
        assert percents == [0, 5, 25, 50, 55, 75, 100, 100]
        assert events[-1].json()["result"] == result


async def test_a_deadline_is_enforced_after_a_gateway_restart(postgres_url: str) -> None:
    async with serve_gateway(postgres_url) as gateway:
        job_id = await gateway.call("test_short")
    await asyncio.sleep(1.2)  # the deadline passes while no gateway runs
    async with serve_gateway(postgres_url) as restarted:

        async def failed() -> dict[str, Any] | None:
            job = await restarted.job(job_id)
            return job if job["status"] == "Failed" else None

        job = await eventually(failed)
        assert job["error"] == "job timed out after 1 s"


async def test_a_database_outage_answers_503_and_the_gateway_recovers(
    fresh_postgres_url: str,
) -> None:
    base, _, name = fresh_postgres_url.rpartition("/")
    async with serve_gateway(fresh_postgres_url) as gateway:
        job_id = await gateway.call("test_pipeline", value=1)
        admin = await asyncpg.connect(f"{base}/postgres")
        try:
            # Take the database away: refuse new connections and cut the existing ones.
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                name,
            )
            ready = await gateway.client.get("/ready")
            assert ready.status_code == 503
            assert "database" in ready.json()
            down = await gateway.client.get(f"/jobs/{job_id}")
            assert down.status_code == 503
            assert "database unavailable" in down.json()["error"]
            call = await gateway.client.post(
                "/tools/call", json={"name": "test_pipeline", "arguments": {"value": 2}}
            )
            assert call.status_code == 503
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()

        async def ready() -> bool:
            return (await gateway.client.get("/ready")).status_code == 200

        await eventually(ready, limit=15, interval=0.2)
        assert (await gateway.job(job_id))["status"] == "Running"
        # The LISTEN connection came back too: a new stream gets live updates.
        opened = asyncio.Event()
        reader = asyncio.create_task(read_events(gateway.client, job_id, on_open=opened.set))
        await asyncio.wait_for(opened.wait(), 10)
        await asyncio.sleep(3)  # the listener reconnects with backoff
        await gateway.progress(job_id, 0, "received")
        final = {"status": "succeeded", "result": 7}
        assert (await gateway.client.post(f"/jobs/{job_id}/final", json=final)).status_code == 200
        events = await asyncio.wait_for(reader, 15)
        assert events[-1].json()["result"] == 7


async def test_connections_the_database_dropped_are_replaced_without_failing_a_call(
    fresh_postgres_url: str,
) -> None:
    base, _, name = fresh_postgres_url.rpartition("/")
    async with serve_gateway(fresh_postgres_url) as gateway:
        # several calls at once, so the pool holds several connections
        await asyncio.gather(*(gateway.call("test_pipeline", value=n) for n in range(8)))
        admin = await asyncpg.connect(f"{base}/postgres")
        try:
            cut = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        finally:
            await admin.close()
        assert cut >= 2
        await asyncio.sleep(0.5)  # the backends are gone and their sockets closed
        # every pooled connection is now dead; calls and reads still succeed (no pre-ping)
        job_ids = await asyncio.gather(*(gateway.call("test_pipeline", value=n) for n in range(8)))
        jobs = [await gateway.job(job_id) for job_id in job_ids]
        assert {job["status"] for job in jobs} == {"Running"}


async def test_a_url_that_turns_ssl_off_works_for_the_pool_and_the_listener(
    postgres_url: str,
) -> None:
    async with serve_gateway(f"{postgres_url}?sslmode=disable") as gateway:
        job_id = await gateway.call("test_pipeline", value=3)
        opened = asyncio.Event()
        reader = asyncio.create_task(read_events(gateway.client, job_id, on_open=opened.set))
        await asyncio.wait_for(opened.wait(), 10)
        final = {"status": "succeeded", "result": 11}
        assert (await gateway.client.post(f"/jobs/{job_id}/final", json=final)).status_code == 200
        events = await asyncio.wait_for(reader, 15)  # delivered through LISTEN/NOTIFY
        assert events[-1].json()["result"] == 11
