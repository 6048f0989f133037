"""The gateway HTTP base: paths, bearer header, retries with backoff."""

from __future__ import annotations

import httpx
import pytest

from asya.backoff import Backoff
from asya.gateway_http import (
    GatewayEndpoint,
    RetriesExhausted,
    api_path,
    job_path,
    send_with_retries,
)


def test_every_segment_of_a_path_is_quoted_on_its_own() -> None:
    assert api_path("jobs", "a/b c", "final") == "/jobs/a%2Fb%20c/final"
    assert job_path("x?y=%1#z") == "/jobs/x%3Fy%3D%251%23z"
    assert job_path("j-1", "progress") == "/jobs/j-1/progress"


def test_the_token_becomes_a_bearer_header_and_no_token_sends_none() -> None:
    assert GatewayEndpoint("http://gw", "s3cret").headers == {"Authorization": "Bearer s3cret"}
    assert GatewayEndpoint("http://gw").headers == {}


def test_a_gateway_under_a_path_prefix_keeps_its_prefix() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200)

    endpoint = GatewayEndpoint("http://gw.test/asya/", "t")
    with endpoint.client(httpx.MockTransport(handler)) as client:
        client.get(job_path("a/b"))

    assert seen == ["http://gw.test/asya/jobs/a%2Fb"]


def scripted(*statuses: int) -> tuple[httpx.Client, list[int]]:
    answered: list[int] = []
    script = list(statuses)

    def handler(request: httpx.Request) -> httpx.Response:
        status = script.pop(0) if script else 200
        answered.append(status)
        return httpx.Response(status, text="scripted")

    return GatewayEndpoint("http://gw.test").client(httpx.MockTransport(handler)), answered


def test_unavailable_answers_are_retried_after_growing_delays() -> None:
    client, answered = scripted(503, 429, 200)
    sleeps: list[float] = []

    response = send_with_retries(
        client, "POST", "/x", attempts=5, backoff=Backoff(0.1), what="x", sleep=sleeps.append
    )

    assert response.status_code == 200
    assert answered == [503, 429, 200]
    assert sleeps == [0.1, 0.2]


def test_an_answer_not_worth_retrying_is_returned_at_once() -> None:
    client, answered = scripted(404)
    sleeps: list[float] = []

    response = send_with_retries(
        client, "GET", "/x", attempts=3, backoff=Backoff(0.1), what="x", sleep=sleeps.append
    )

    assert response.status_code == 404
    assert (answered, sleeps) == ([404], [])


def test_the_last_problem_is_raised_when_every_attempt_failed() -> None:
    client, answered = scripted(500, 502, 503)

    with pytest.raises(RetriesExhausted, match="after 3 attempts: HTTP 503: scripted"):
        send_with_retries(
            client, "GET", "/x", attempts=3, backoff=Backoff(0.1), what="x", sleep=lambda _: None
        )

    assert answered == [500, 502, 503]
