"""Progress reports: order, timing relative to publishing, budget, token, failures contained."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest

from asya.sidecar import progress_reporter
from asya.sidecar.progress_reporter import ProgressReporter
from tests.helpers import free_port

from .conftest import Harness, make_message

pytestmark = pytest.mark.timeout(30)


@dataclass
class FakeGateway:
    """Records progress POSTs; answers after ``delay`` seconds."""

    delay: float = 0.0
    reports: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    on_report: Any = None
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode()
            headers: dict[str, str] = {}
            while (line := (await reader.readline()).decode().strip()) != "":
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if request_line.startswith("GET"):  # the cancellation stream: not served here
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            await asyncio.sleep(self.delay)
            self.paths.append(request_line.split()[1])
            self.authorizations.append(headers.get("authorization"))
            report = orjson.loads(body)
            if self.on_report is not None:
                await self.on_report(report)
            self.reports.append(report)
            answer = b'{"status": "ok", "progress_percent": 10}'
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(answer)}\r\nConnection: close\r\n\r\n".encode()
                + answer
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    fake = FakeGateway()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = server.sockets[0].getsockname()[1]
    yield fake
    server.close()


async def test_reports_are_received_processing_completed_before_the_result_is_published(
    harness: Harness, gateway: FakeGateway
) -> None:
    async def queue_depth_at_report(report: dict[str, Any]) -> None:
        report["_next_step_depth"] = await harness.client.depth("step-b")

    gateway.on_report = queue_depth_at_report
    await harness.start(gateway_url=gateway.url, gateway_token="tok")
    body = await harness.send(make_message(["step-a", "step-b"], job_id="job-1"))
    await harness.take("step-b")
    assert [r["status"] for r in gateway.reports] == ["received", "processing", "completed"]
    assert all(r["_next_step_depth"] == 0 for r in gateway.reports)
    assert gateway.paths == ["/jobs/job-1/progress"] * 3
    assert gateway.authorizations == ["Bearer tok"] * 3
    received, processing, completed = gateway.reports
    for report in gateway.reports:
        assert report["step"] == "step-a"
        assert report["step_index"] == 0
        assert report["total_steps"] == 2
        assert report["actor_name"] == "step-a"
    assert received["message"] == f"Received message ({len(body) / 1024:.2f} KB)"
    assert processing["message"] == "Processing in step-a"
    assert completed["message"].startswith("Completed processing in ")
    assert completed["message"].endswith(" ms")
    assert completed["duration_ms"] >= 0
    assert all("branch" not in report for report in gateway.reports)


async def test_reports_of_a_fan_out_branch_carry_the_branch(
    harness: Harness, gateway: FakeGateway
) -> None:
    branch = [{"index": 1, "count": 3}]
    await harness.start(gateway_url=gateway.url)
    await harness.send({**make_message(["step-a", "step-b"], job_id="job-2"), "branch": branch})
    await harness.take("step-b")
    assert [r["branch"] for r in gateway.reports] == [branch] * 3


async def test_the_completed_report_of_a_fan_out_counts_its_outputs(
    harness: Harness, gateway: FakeGateway
) -> None:
    async def split(message: dict[str, Any]) -> Any:
        return [{**message, "payload": n} for n in range(3)]

    harness.runtime.behaviour = split
    await harness.start(gateway_url=gateway.url)
    await harness.send(make_message(["step-a", "step-b"], job_id="job-3"))
    for _ in range(3):
        await harness.take("step-b")
    completed = gateway.reports[-1]
    assert completed["status"] == "completed"
    assert completed["outputs"] == 3
    assert all("outputs" not in r for r in gateway.reports[:-1])


async def test_no_reports_without_a_job_id(harness: Harness, gateway: FakeGateway) -> None:
    await harness.start(gateway_url=gateway.url)
    await harness.send(make_message(["step-a"]))
    await harness.take("happy-end")
    assert gateway.reports == []


async def test_a_failed_message_gets_no_completed_report(
    harness: Harness, gateway: FakeGateway
) -> None:
    async def fail(message: dict[str, Any]) -> Any:
        return [{"error": "processing_error", "details": {"message": "x", "type": "E"}}]

    harness.runtime.behaviour = fail
    await harness.start(gateway_url=gateway.url)
    await harness.send(make_message(["step-a"], job_id="job-2"))
    await harness.take("error-end")
    assert [r["status"] for r in gateway.reports] == ["received", "processing"]


async def test_a_slow_gateway_is_given_up_on_and_the_message_still_flows(
    harness: Harness, gateway: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress_reporter, "REPORT_BUDGET", 0.2)
    gateway.delay = 5.0
    await harness.start(gateway_url=gateway.url)
    started = time.monotonic()
    await harness.send(make_message(["step-a"], job_id="job-3"))
    await harness.take("happy-end")
    elapsed = time.monotonic() - started
    assert elapsed < 2.5  # three reports × 0.2 s budget, not 3 × 5 s
    assert gateway.reports == []


async def test_a_gateway_that_is_down_never_fails_the_message(harness: Harness) -> None:
    await harness.start(gateway_url=f"http://127.0.0.1:{free_port()}")
    await harness.send(make_message(["step-a"], job_id="job-4"))
    assert (await harness.take("happy-end"))["job_id"] == "job-4"


async def test_a_terminal_actor_sends_no_reports(harness: Harness, gateway: FakeGateway) -> None:
    await harness.start(gateway_url=gateway.url, is_terminal=True, queue_name="crew")
    await harness.send(make_message(["step-a"], current=1, job_id="job-5"), queue="crew")
    await harness.runtime.wait_requests()
    await asyncio.sleep(0.2)
    assert gateway.reports == []


async def test_each_report_is_given_up_after_its_budget(gateway: FakeGateway) -> None:
    gateway.delay = 3.0
    reporter = ProgressReporter(gateway.url, "actor", budget=0.3)
    try:
        started = time.monotonic()
        ok = await reporter.report(
            "j", step="s", step_index=0, total_steps=1, status="received", message="m"
        )
        assert not ok
        assert time.monotonic() - started < 1.0
    finally:
        await reporter.aclose()


async def test_a_gateway_error_status_is_reported_as_failure() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reporter = ProgressReporter(f"http://127.0.0.1:{port}", "actor")
    try:
        assert not await reporter.report(
            "j", step="s", step_index=0, total_steps=1, status="received", message="m"
        )
    finally:
        await reporter.aclose()
        server.close()


async def test_a_job_id_with_url_characters_stays_one_path_segment(gateway: FakeGateway) -> None:
    reporter = ProgressReporter(gateway.url, "actor")
    try:
        assert await reporter.report(
            "a/b?c=1&d%2 e#f", step="s", step_index=0, total_steps=1, status="received", message="m"
        )
    finally:
        await reporter.aclose()

    assert gateway.paths == ["/jobs/a%2Fb%3Fc%3D1%26d%252%20e%23f/progress"]
