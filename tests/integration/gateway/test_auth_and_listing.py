"""API keys, the actor token, and job listings (newest first, filters, limits)."""

from __future__ import annotations

import asyncio

from tests.integration.gateway.conftest import serve_gateway


async def test_client_endpoints_need_an_api_key_and_actor_endpoints_the_actor_token(
    sqlite_url: str,
) -> None:
    async with serve_gateway(
        sqlite_url, api_keys=("key-one", "key-two"), actor_token="actor-secret"
    ) as gateway:
        client = gateway.client
        call = {"name": "test_pipeline", "arguments": {"value": 1}}
        assert (await client.post("/tools/call", json=call)).status_code == 401
        wrong = await client.post(
            "/tools/call", json=call, headers={"Authorization": "Bearer nope"}
        )
        assert wrong.status_code == 401
        assert "error" in wrong.json()
        ok = await client.post(
            "/tools/call", json=call, headers={"Authorization": "Bearer key-two"}
        )
        assert ok.status_code == 200
        job_id = ok.json()["structuredContent"]["job_id"]
        key = {"Authorization": "Bearer key-one"}
        actor = {"Authorization": "Bearer actor-secret"}

        for path in ("/tools", "/jobs", f"/jobs/{job_id}", f"/jobs/{job_id}/stream"):
            assert (await client.get(path)).status_code == 401, path
        assert (await client.get("/tools", headers=key)).status_code == 200
        assert (await client.get(f"/jobs/{job_id}", headers=key)).status_code == 200
        assert (await client.post("/mcp", json={})).status_code == 401

        report = {"step": "step-a", "step_index": 0, "total_steps": 2, "status": "received"}
        assert (await client.post(f"/jobs/{job_id}/progress", json=report)).status_code == 401
        with_key = await client.post(f"/jobs/{job_id}/progress", json=report, headers=key)
        assert with_key.status_code == 401
        progress = await client.post(f"/jobs/{job_id}/progress", json=report, headers=actor)
        assert progress.status_code == 200
        heartbeat = {"actor_name": "step-a", "status": "processing"}
        assert (await client.post(f"/jobs/{job_id}/heartbeat", json=heartbeat)).status_code == 401
        final = {"status": "succeeded", "result": 3}
        assert (await client.post(f"/jobs/{job_id}/final", json=final)).status_code == 401

        assert (await client.get(f"/jobs/{job_id}/active")).status_code == 401
        assert (await client.get(f"/jobs/{job_id}/active", headers=key)).status_code == 200
        assert (await client.get(f"/jobs/{job_id}/active", headers=actor)).status_code == 200

        for path in ("/health", "/ready", "/metrics"):
            assert (await client.get(path)).status_code == 200, path

        job = (await client.get(f"/jobs/{job_id}", headers=key)).json()
        assert job["progress_percent"] == 5


async def _list_jobs_newest_first_with_filters(database_url: str) -> None:
    async with serve_gateway(database_url) as gateway:
        ids = []
        for value in range(4):
            ids.append(await gateway.call("test_pipeline", value=value))
            await asyncio.sleep(0.01)
        await gateway.client.post(f"/jobs/{ids[1]}/final", json={"status": "succeeded"})
        listed = (await gateway.client.get("/jobs")).json()["jobs"]
        assert [job["id"] for job in listed] == list(reversed(ids))
        limited = (await gateway.client.get("/jobs", params={"limit": 2})).json()["jobs"]
        assert [job["id"] for job in limited] == [ids[3], ids[2]]
        done = (await gateway.client.get("/jobs", params={"status": "Succeeded"})).json()
        assert [job["id"] for job in done["jobs"]] == [ids[1]]
        running = (await gateway.client.get("/jobs", params={"status": "running"})).json()
        assert [job["id"] for job in running["jobs"]] == [ids[3], ids[2], ids[0]]
        for bad in ({"limit": "x"}, {"limit": 0}, {"status": "Sleeping"}):
            assert (await gateway.client.get("/jobs", params=bad)).status_code == 400
        many = await gateway.client.get("/jobs", params={"limit": 100000})
        assert many.status_code == 200


async def test_jobs_are_listed_newest_first_with_status_and_limit_on_sqlite(
    sqlite_url: str,
) -> None:
    await _list_jobs_newest_first_with_filters(sqlite_url)


async def test_jobs_are_listed_newest_first_with_status_and_limit_on_postgresql(
    fresh_postgres_url: str,
) -> None:
    await _list_jobs_newest_first_with_filters(fresh_postgres_url)


async def _pages_by_cursor_with_tool_duration_and_error_code(database_url: str) -> None:
    async with serve_gateway(database_url) as gateway:
        client = gateway.client
        ids = [await gateway.call("test_pipeline", value=value) for value in range(5)]
        echo = await gateway.call("test_echo", message="hi")
        await client.post(f"/jobs/{ids[0]}/final", json={"status": "succeeded", "result": 1})
        failure = {"status": "failed", "error": "processing_error: 'missing_key'"}
        await client.post(f"/jobs/{ids[1]}/final", json=failure)

        first = (await client.get("/jobs", params={"tool": "test_pipeline", "limit": 2})).json()
        assert [job["id"] for job in first["jobs"]] == [ids[4], ids[3]]
        assert {job["tool"] for job in first["jobs"]} == {"test_pipeline"}
        # a job created between pages neither shifts nor repeats the next page
        await gateway.call("test_pipeline", value=99)
        cursor = first["next_cursor"]
        second = (
            await client.get(
                "/jobs", params={"tool": "test_pipeline", "limit": 2, "cursor": cursor}
            )
        ).json()
        assert [job["id"] for job in second["jobs"]] == [ids[2], ids[1]]
        third = (
            await client.get(
                "/jobs",
                params={"tool": "test_pipeline", "limit": 2, "cursor": second["next_cursor"]},
            )
        ).json()
        assert [job["id"] for job in third["jobs"]] == [ids[0]]
        assert third["next_cursor"] is None

        by_id = {job["id"]: job for job in (await client.get("/jobs")).json()["jobs"]}
        assert by_id[echo]["tool"] == "test_echo"
        assert by_id[ids[0]]["status"] == "Succeeded"
        assert by_id[ids[0]]["duration_seconds"] >= 0
        assert by_id[ids[0]]["error_code"] is None
        assert by_id[ids[1]]["error_code"] == "processing_error"
        assert by_id[ids[2]]["duration_seconds"] is None  # still running
        assert (await gateway.job(echo))["tool"] == "test_echo"

        failed = await client.get("/jobs", params={"status": "failed", "tool": "test_pipeline"})
        assert [job["id"] for job in failed.json()["jobs"]] == [ids[1]]
        for bad, fragment in (
            ({"tool": "no_such_tool"}, "unknown tool 'no_such_tool'"),
            ({"cursor": "not-a-cursor"}, "cursor"),
            ({"status": "done"}, "status must be one of"),
            ({"limit": "-3"}, "limit must be at least 1"),
        ):
            answer = await client.get("/jobs", params=bad)
            assert answer.status_code == 400, bad
            assert fragment in answer.json()["error"]


async def test_jobs_page_by_cursor_with_tool_duration_and_error_code_on_sqlite(
    sqlite_url: str,
) -> None:
    await _pages_by_cursor_with_tool_duration_and_error_code(sqlite_url)


async def test_jobs_page_by_cursor_with_tool_duration_and_error_code_on_postgresql(
    fresh_postgres_url: str,
) -> None:
    await _pages_by_cursor_with_tool_duration_and_error_code(fresh_postgres_url)


async def test_every_listing_filter_is_served_by_an_index_on_sqlite(sqlite_url: str) -> None:
    from datetime import UTC, datetime

    import sqlalchemy as sa
    from sqlalchemy.dialects import sqlite

    from asya.gateway.store import JobStore, list_jobs_query

    store = JobStore(sqlite_url)
    await store.migrate()
    after = (datetime(2026, 5, 1, tzinfo=UTC), "b0b")
    try:
        for filters in ({}, {"status": "Failed"}, {"tool": "shout"}, {"after": after}):
            query = list_jobs_query(limit=20, **filters)  # type: ignore[arg-type]
            compiled = query.compile(
                dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}
            )
            async with store.engine.connect() as conn:
                plan = " | ".join(
                    str(row[-1])
                    for row in await conn.execute(sa.text(f"EXPLAIN QUERY PLAN {compiled}"))
                )
            assert "USING INDEX" in plan, (filters, plan)
            # rows come in index order: at most jobs created in the same microsecond are sorted
            assert "TEMP B-TREE FOR ORDER BY" not in plan, (filters, plan)
    finally:
        await store.close()
