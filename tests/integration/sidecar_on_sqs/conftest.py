"""Actors on SQS (moto's server): a few sidecar_vs_runtime scenarios on the second broker.

The actors and their handlers are sidecar_vs_runtime's (``handlers.py``); only the broker
differs. Queues are this run's (prefixed), declared here and deleted at the end; a thread
drains happy-end and error-end into ``Inbox``es the tests wait on.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest

from asya.transports._sqs_api import decode_body
from tests.integration.sidecar_vs_runtime.broker import Inbox
from tests.integration.sidecar_vs_runtime.harness import Processes, SuiteConfig, message

# The actors every test shares: suite name -> (handler, extra environment).
ACTORS: dict[str, tuple[str, dict[str, str]]] = {
    "echo": ("echo", {}),
    "fanout": ("fanout", {}),
    "error": ("error", {}),
    "crash-once": (
        "crash_once_message",
        {"ASYA_HANDLER_MODE": "message", "ASYA_MAX_RETRIES": "2", "ASYA_RETRY_BACKOFF": "200ms"},
    ),
}


class SqsQueues:
    """A synchronous boto3 view of the run's queues, for the test side."""

    def __init__(self, sqs_url: str, prefix: str) -> None:
        query = dict(parse_qsl(urlsplit(sqs_url).query))
        self.client: Any = boto3.session.Session().client(
            "sqs", region_name=query["region"], endpoint_url=query["endpoint"]
        )
        self.prefix = prefix
        self.urls: dict[str, str] = {}

    def q(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def declare(self, queue: str) -> None:
        self.urls[queue] = self.client.create_queue(QueueName=queue)["QueueUrl"]

    def url(self, queue: str) -> str:
        if queue not in self.urls:
            self.urls[queue] = self.client.get_queue_url(QueueName=queue)["QueueUrl"]
        return self.urls[queue]

    def publish(self, queue: str, body: dict[str, Any]) -> None:
        self.client.send_message(QueueUrl=self.url(queue), MessageBody=json.dumps(body))

    def delete_all(self) -> None:
        for url in self.client.list_queues(QueueNamePrefix=self.prefix).get("QueueUrls", []):
            self.client.delete_queue(QueueUrl=url)


class Drain:
    """Moves every message of the watched queues into their inboxes, until stopped."""

    def __init__(self, queues: SqsQueues, inboxes: list[Inbox]) -> None:
        self._queues = queues
        self._inboxes = inboxes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-drain", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        client = self._queues.client
        while not self._stop.is_set():
            for inbox in self._inboxes:
                url = self._queues.url(inbox.queue)
                answer = client.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                    MessageAttributeNames=["All"],
                )  # fmt: skip
                for received in answer.get("Messages", []):
                    inbox.add(decode_body(received))
                    client.delete_message(QueueUrl=url, ReceiptHandle=received["ReceiptHandle"])
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class SqsMesh:
    """What a test talks to: queue names, publishing, the terminal inboxes, its processes."""

    suite: SuiteConfig
    queues: SqsQueues
    happy_end: Inbox
    error_end: Inbox
    sqs_url: str

    def q(self, actor: str) -> str:
        return self.queues.q(f"test-{actor}-queue")

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = self.suite.env(extra)
        env["ASYA_TRANSPORT_URL"] = self.sqs_url
        env.pop("ASYA_RABBITMQ_URL", None)
        return env

    def send(self, steps: list[str], payload: Any, **fields: Any) -> dict[str, Any]:
        sent = message(steps, payload, **fields)
        self.queues.publish(steps[sent["route"]["current"]], sent)
        return sent


@pytest.fixture(scope="package")
def sqs_mesh(
    run_id: str, sqs_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqsMesh]:
    prefix = f"asya-test-{run_id}-sqs-"
    suite = SuiteConfig(
        rabbitmq_url="",  # unused: SqsMesh.env points the actors at SQS
        exchange="",
        prefix=prefix,
        log_dir=tmp_path_factory.mktemp("sidecar_on_sqs-logs"),
        socket_dir=Path(tempfile.mkdtemp(prefix=f"asya-sqs-{run_id}-", dir="/tmp")),
    )
    queues = SqsQueues(sqs_url, prefix)
    for name in [suite.happy_end, suite.error_end, *(f"{prefix}test-{a}-queue" for a in ACTORS)]:
        queues.declare(name)
    happy_end, error_end = Inbox(suite.happy_end), Inbox(suite.error_end)
    drain = Drain(queues, [happy_end, error_end])
    mesh = SqsMesh(suite, queues, happy_end, error_end, sqs_url)
    processes = Processes(suite)
    try:
        for actor, (handler, extra) in ACTORS.items():
            processes.actor(actor, handler, mesh.q(actor), mesh.env(extra))
        yield mesh
    finally:
        processes.stop_all()
        drain.stop()
        queues.delete_all()
        shutil.rmtree(suite.socket_dir, ignore_errors=True)


@pytest.fixture
def procs(sqs_mesh: SqsMesh) -> Iterator[Processes]:
    """Processes a single test starts (and kills); all stopped when it ends."""
    processes = Processes(sqs_mesh.suite)
    try:
        yield processes
    finally:
        processes.stop_all()


@pytest.fixture
def tid() -> str:
    """A unique id a test puts in its messages to find them in the terminal queues."""
    return f"t-{uuid.uuid4().hex}"
