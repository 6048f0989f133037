"""Reading a job's SSE stream: status, updates, comments, multi-line data, reconnects."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from asya.client.gateway import GatewayClient, GatewayUnreachable
from asya.errors import JobNotFound

Handler = Callable[[httpx.Request], httpx.Response]


def sse_response(text: str) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, text=text)


def update(seq: int, status: str, percent: float, step: str | None = None, **extra: object) -> str:
    data = {"job_id": "j1", "status": status, "progress_percent": percent, "step": step, **extra}
    return f"id: {seq}\nevent: update\ndata: {json.dumps(data)}\n\n"


def client_for(handler: Handler) -> GatewayClient:
    return GatewayClient("http://gw.test", transport=httpx.MockTransport(handler))


def test_stream_yields_status_then_updates_until_the_terminal_one() -> None:
    body = (
        "event: status\ndata: Running\n\n"
        + ": keep-alive\n\n"
        + update(1, "Running", 5, "doubler", step_status="received")
        + update(2, "Succeeded", 100, result={"value": 25})
        + update(3, "Running", 50)  # never read: the job was already terminal
    )
    client = client_for(lambda request: sse_response(body))

    events = list(client.stream("j1"))

    assert [(e.kind, e.status) for e in events] == [
        ("status", "Running"),
        ("update", "Running"),
        ("update", "Succeeded"),
    ]
    assert events[1].data["step_status"] == "received"
    assert events[2].data["result"] == {"value": 25}
    assert events[2].id == "2"


def test_multi_line_data_is_joined_and_crlf_line_ends_are_understood() -> None:
    body = 'event: update\r\nid: 7\r\ndata: {"status": "Failed",\r\ndata:  "error": "boom"}\r\n\r\n'
    client = client_for(lambda request: sse_response(body))

    (event,) = list(client.stream("j1"))

    assert event.data == {"status": "Failed", "error": "boom"}
    assert event.id == "7"


def test_unparsable_and_unknown_events_are_skipped() -> None:
    body = "event: update\ndata: {not json\n\nevent: other\ndata: x\n\n" + update(
        1, "Succeeded", 100
    )
    client = client_for(lambda request: sse_response(body))

    assert [e.status for e in client.stream("j1")] == ["Succeeded"]


def test_dropped_stream_resumes_after_the_last_event_id() -> None:
    seen_ids: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen_ids.append(request.headers.get("last-event-id"))
        if len(seen_ids) == 1:
            return sse_response("event: status\ndata: Running\n\n" + update(4, "Running", 50))
        return sse_response("event: status\ndata: Running\n\n" + update(5, "Succeeded", 100))

    client = client_for(handler)

    statuses = [e.status for e in client.stream("j1")]

    assert seen_ids == [None, "4"]
    assert statuses[-1] == "Succeeded"


def test_already_terminal_job_with_no_updates_ends_the_stream() -> None:
    client = client_for(lambda request: sse_response("event: status\ndata: Failed\n\n"))

    assert [e.status for e in client.stream("j1")] == ["Failed"]


def test_unknown_job_raises_job_not_found() -> None:
    client = client_for(lambda request: httpx.Response(404, json={"error": "job not found"}))

    with pytest.raises(JobNotFound):
        list(client.stream("nope"))


def test_unreachable_gateway_is_reported_after_a_few_reconnects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("asya.client.gateway.time.sleep", lambda seconds: None)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(GatewayUnreachable, match="connection refused"):
        list(client_for(refuse).stream("j1", reconnects=2))


def test_a_job_id_with_url_characters_stays_one_path_segment() -> None:
    paths: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path)
        if request.url.raw_path.endswith(b"/stream"):
            return sse_response(update(1, "Succeeded", 100))
        return httpx.Response(200, json={"job_id": "x"})

    client = client_for(handler)
    client.job("a/b?c=1&d%2 e#f")
    list(client.stream("a/b?c=1&d%2 e#f"))

    assert paths == [
        b"/jobs/a%2Fb%3Fc%3D1%26d%252%20e%23f",
        b"/jobs/a%2Fb%3Fc%3D1%26d%252%20e%23f/stream",
    ]
