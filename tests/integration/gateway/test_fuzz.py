"""Bad input never answers 500: thousands of seeded malformed requests on every public route.

One gateway serves the whole run over one keep-alive client. Every answer must be a 4xx (or a
success where the request happened to be acceptable), never a 5xx or a dropped connection;
error answers are JSON naming the problem; afterwards the gateway is healthy and the jobs
created before the fuzz are all still there. A failure prints the seed and index to replay.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from tests.integration.gateway.conftest import serve_gateway
from tests.integration.gateway.fuzz_requests import malformed_requests

pytestmark = pytest.mark.asyncio


def _is_json_error(response: httpx.Response) -> bool:
    try:
        body: Any = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return False
    return isinstance(body, dict) and ("error" in body or "active" in body)


async def _fuzz(database_url: str, seed: int, count: int) -> None:
    async with serve_gateway(database_url) as gateway:
        known = [await gateway.call("test_echo", message=f"before {n}") for n in range(3)]
        server_errors: list[str] = []
        unclear: list[str] = []
        for index, (method, path, body, headers) in enumerate(
            malformed_requests(seed, count, known)
        ):
            where = f"seed {seed} #{index}: {method} {path[:80]} {(body or b'')[:60]!r}"
            try:
                response = await gateway.client.request(method, path, content=body, headers=headers)
            except httpx.HTTPError as exc:  # a dropped connection
                server_errors.append(f"{where} -> {type(exc).__name__}")
                continue
            if response.status_code >= 500:
                server_errors.append(f"{where} -> {response.status_code} {response.text[:120]}")
            elif (
                response.status_code >= 400
                and path.startswith(("/jobs", "/tools"))
                and not _is_json_error(response)
            ):
                unclear.append(f"{where} -> {response.status_code} {response.text[:80]}")
        assert server_errors == [], "\n".join(server_errors[:20])
        assert unclear == [], "\n".join(unclear[:20])
        assert (await gateway.client.get("/health")).status_code == 200
        for job_id in known:
            assert (await gateway.job(job_id))["id"] == job_id


def _is_parse_error(response: httpx.Response) -> bool:
    return bool(response.json().get("error", {}).get("code") == -32700)


async def test_three_thousand_malformed_requests_on_sqlite_get_no_5xx(sqlite_url: str) -> None:
    await _fuzz(sqlite_url, seed=1, count=3000)


async def test_malformed_requests_on_postgresql_get_no_5xx(fresh_postgres_url: str) -> None:
    await _fuzz(fresh_postgres_url, seed=2, count=600)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\xff\xfe{}", "not valid UTF-8 JSON"),
        (b"[" * 5000 + b"]" * 5000, "nested deeper"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "tools/l', "not valid UTF-8 JSON"),
    ],
)
async def test_mcp_answers_a_body_it_cannot_parse_with_a_json_rpc_parse_error(
    sqlite_url: str, body: bytes, problem: str
) -> None:
    async with serve_gateway(sqlite_url) as gateway:
        response = await gateway.client.post(
            "/mcp",
            content=body,
            headers={
                "content-type": "application/json",
                "accept": "application/json, text/event-stream",
            },
        )
    assert response.status_code == 400
    answer = response.json()
    assert answer["jsonrpc"] == "2.0"
    assert answer["id"] is None
    assert answer["error"]["code"] == -32700
    assert problem in answer["error"]["message"]


@pytest.mark.parametrize("status", [["received"], {"a": 1}, 3])
async def test_progress_with_a_status_of_the_wrong_type_is_a_400(
    sqlite_url: str, status: object
) -> None:
    async with serve_gateway(sqlite_url) as gateway:
        job_id = await gateway.call("test_echo", message="hi")
        response = await gateway.client.post(
            f"/jobs/{job_id}/progress",
            json={"step": "step-a", "step_index": 0, "total_steps": 1, "status": status},
        )
    assert response.status_code == 400
    assert "status" in response.json()["error"]


async def test_an_unknown_route_or_method_answers_a_json_error(sqlite_url: str) -> None:
    async with serve_gateway(sqlite_url) as gateway:
        missing = await gateway.client.post("/tools/nope/call", json={})
        wrong = await gateway.client.get("/tools/call")
    assert missing.status_code == 404
    assert "no route" in missing.json()["error"]
    assert wrong.status_code == 405
    assert "GET" in wrong.json()["error"]
