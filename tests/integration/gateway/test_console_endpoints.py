"""``GET /jobs/summary``, ``GET /actors`` and the console's pages on an in-process gateway, on
SQLite and PostgreSQL (docs/reference/gateway-api.md#jobs-summary, #actors)."""

from __future__ import annotations

from tests.integration.gateway.conftest import RunningGateway


async def test_summary_counts_the_window_per_status(gateway: RunningGateway) -> None:
    before = (await gateway.client.get("/jobs/summary")).json()
    for value in range(3):
        await gateway.call("test_echo", message=f"m{value}")

    after = (await gateway.client.get("/jobs/summary", params={"since": "5m"})).json()

    assert after["window_seconds"] == 300
    assert after["total"] == before["total"] + 3
    assert after["counts"]["Running"] == before["counts"]["Running"] + 3
    assert sum(after["counts"].values()) == after["total"]


async def test_summary_refuses_a_window_that_is_no_duration(gateway: RunningGateway) -> None:
    response = await gateway.client.get("/jobs/summary", params={"since": "soon"})

    assert response.status_code == 400
    assert response.json()["error"].startswith("since must be a duration")


async def test_actors_lists_route_steps_crew_and_dead_letters_with_depths(
    gateway: RunningGateway,
) -> None:
    await gateway.call("test_echo", message="waiting")

    rows = (await gateway.client.get("/actors")).json()["actors"]

    by_queue = {row["queue"]: row for row in rows}
    assert [row["role"] for row in rows][-3:] == ["happy-end", "error-end", "dead-letter"]
    assert by_queue["step-a"]["depth"] == 1
    assert by_queue["step-a"]["error"] is None
    assert "test_echo" in by_queue["step-a"]["tools"]
    assert by_queue["no-such-queue"]["error"] is not None  # declared nowhere: said, not a 500
    assert by_queue["step-a"]["replicas"] is None  # not under asya up


async def test_console_pages_and_config(gateway: RunningGateway) -> None:
    root = await gateway.client.get("/")
    assert root.status_code == 302
    assert root.headers["location"] == "/ui"
    for path in ("/ui", "/ui/actors", "/ui/jobs/some-id"):
        page = await gateway.client.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
    config = (await gateway.client.get("/ui/config")).json()
    assert config["auth_required"] is False
    assert config["cancel"] is True  # POST /jobs/{id}/cancel exists: the job page offers it
    assert (await gateway.client.get("/ui/static/nope.js")).status_code == 404
