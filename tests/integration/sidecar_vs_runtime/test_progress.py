"""Progress reports to the gateway (docs/reference/sidecar.md#progress-reports), seen by a recording
fake gateway.

For a message with a ``job_id`` each step reports ``received``, ``processing`` and ``completed``
in that order, and all of them reach the gateway before the step's result is published.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.integration.sidecar_vs_runtime.broker import Broker, Inbox
from tests.integration.sidecar_vs_runtime.checks import assert_routed_to_end
from tests.integration.sidecar_vs_runtime.harness import (
    Processes,
    SuiteConfig,
    message,
    wait_consuming,
)

pytestmark = pytest.mark.services

ACTOR_NAME = "progress-echo"
TOKEN = "actor-secret"


@dataclass
class Report:
    path: str
    body: dict[str, Any]
    authorization: str | None
    at: float


@dataclass
class FakeGateway:
    """Answers every POST like the gateway does and records it."""

    reports: list[Report] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def for_job(self, job_id: str) -> list[Report]:
        with self.lock:
            return [r for r in self.reports if r.path == f"/jobs/{job_id}/progress"]

    def since(self, moment: float) -> list[Report]:
        with self.lock:
            return [r for r in self.reports if r.at >= moment]


@pytest.fixture(scope="module")
def gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            with fake.lock:
                fake.reports.append(
                    Report(
                        self.path,
                        json.loads(raw or b"{}"),
                        self.headers.get("Authorization"),
                        time.monotonic(),
                    )
                )
            body = json.dumps({"status": "ok", "progress_percent": 10}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def reporting(suite: SuiteConfig, broker: Broker, gateway: FakeGateway) -> Iterator[dict[str, str]]:
    """Echo (named, with a token), error and fanout actors, all reporting to the fake."""
    processes = Processes(suite)
    queues = {
        "echo": suite.q("progress-echo"),
        "error": suite.q("progress-error"),
        "fanout": suite.q("progress-fanout"),
    }
    gateway_env = {"ASYA_GATEWAY_URL": gateway.url}
    try:
        procs = {
            queues["echo"]: processes.actor(
                "progress-echo",
                "echo",
                queues["echo"],
                suite.env(
                    {**gateway_env, "ASYA_ACTOR_NAME": ACTOR_NAME, "ASYA_GATEWAY_TOKEN": TOKEN}
                ),
            ),
            queues["error"]: processes.actor(
                "progress-error", "error", queues["error"], suite.env(gateway_env)
            ),
            queues["fanout"]: processes.actor(
                "progress-fanout", "fanout", queues["fanout"], suite.env(gateway_env)
            ),
        }
        wait_consuming(broker, procs)
        yield queues
    finally:
        processes.stop_all()


def _statuses(reports: list[Report]) -> list[tuple[int, str]]:
    return [(r.body["step_index"], r.body["status"]) for r in reports]


def test_each_step_reports_received_processing_completed_before_publishing(
    broker: Broker, happy_end: Inbox, gateway: FakeGateway, reporting: dict[str, str], tid: str
) -> None:
    queue = reporting["echo"]
    job_id = f"{tid}-job"
    sent = message([queue, queue], {"test_id": tid}, job_id=job_id)
    broker.publish(queue, sent)

    [received] = happy_end.wait_for(tid)

    assert_routed_to_end(received.data, sent, {"test_id": tid})
    reports = gateway.for_job(job_id)
    assert _statuses(reports) == [
        (0, "received"),
        (0, "processing"),
        (0, "completed"),
        (1, "received"),
        (1, "processing"),
        (1, "completed"),
    ]
    assert all(report.at <= received.at for report in reports), "a report came after publishing"
    for report in reports:
        body = report.body
        assert body["step"] == queue
        assert body["total_steps"] == 2
        assert body["actor_name"] == ACTOR_NAME
        assert report.authorization == f"Bearer {TOKEN}"
    messages = [report.body["message"] for report in reports[:3]]
    assert re.fullmatch(r"Received message \(\d+\.\d\d KB\)", messages[0]), messages[0]
    assert messages[1] == f"Processing in {ACTOR_NAME}"
    assert re.fullmatch(r"Completed processing in \d+ ms", messages[2]), messages[2]


def test_a_failed_message_gets_no_completed_report(
    broker: Broker, error_end: Inbox, gateway: FakeGateway, reporting: dict[str, str], tid: str
) -> None:
    queue = reporting["error"]
    job_id = f"{tid}-job"
    broker.publish(queue, message([queue], {"test_id": tid}, job_id=job_id))

    error_end.wait_for(tid)
    time.sleep(0.5)

    reports = gateway.for_job(job_id)
    assert _statuses(reports) == [(0, "received"), (0, "processing")]
    assert {report.body["actor_name"] for report in reports} == {queue}  # default: the queue


def test_a_message_without_job_id_sends_no_progress_reports(
    broker: Broker, happy_end: Inbox, gateway: FakeGateway, reporting: dict[str, str], tid: str
) -> None:
    queue = reporting["echo"]
    started = time.monotonic()
    broker.publish(queue, message([queue], {"test_id": tid}))

    happy_end.wait_for(tid)
    time.sleep(0.5)

    assert gateway.since(started) == []


def test_a_fanout_reports_completed_once(
    broker: Broker, happy_end: Inbox, gateway: FakeGateway, reporting: dict[str, str], tid: str
) -> None:
    queue = reporting["fanout"]
    job_id = f"{tid}-job"
    broker.publish(queue, message([queue], {"test_id": tid, "count": 4}, job_id=job_id))

    happy_end.expect(tid, count=4)

    assert _statuses(gateway.for_job(job_id)) == [
        (0, "received"),
        (0, "processing"),
        (0, "completed"),
    ]
