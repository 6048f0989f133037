"""Actors with payloads by reference: RabbitMQ for the messages, moto's S3 server (the run's
moto process, shared with the SQS tests) for the payloads. The handlers are
sidecar_vs_runtime's; queues and bucket are this run's and are deleted at the end."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest

from asya.payloads import ClaimCheck
from asya.payloads.stores import S3Store
from tests.integration.sidecar_vs_runtime.broker import Broker, Inbox
from tests.integration.sidecar_vs_runtime.harness import (
    Processes,
    SuiteConfig,
    message,
    wait_consuming,
)

#: suite actor name -> sidecar_vs_runtime handler
ACTORS = {"first": "echo", "fanout": "fanout", "last": "echo"}
PREFIX = "payloads"


@dataclass
class OffloadMesh:
    suite: SuiteConfig
    broker: Broker
    happy_end: Inbox
    error_end: Inbox
    bucket: str
    s3: Any
    claim_check: ClaimCheck

    def q(self, actor: str) -> str:
        return self.suite.q(f"cc-{actor}")

    def send(self, steps: list[str], payload: Any, **fields: Any) -> None:
        self.broker.publish(
            self.q(steps[0]), message([self.q(s) for s in steps], payload, **fields)
        )


@pytest.fixture(scope="package")
def s3_endpoint(sqs_url: str) -> str:
    return dict(parse_qsl(urlsplit(sqs_url).query))["endpoint"]


@pytest.fixture(scope="package")
def offload_mesh(
    run_id: str,
    rabbitmq_url: str,
    s3_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OffloadMesh]:
    suite = SuiteConfig(
        rabbitmq_url=rabbitmq_url,
        exchange=f"asya-test-{run_id}-cc",
        prefix=f"asya-test-{run_id}-cc-",
        log_dir=tmp_path_factory.mktemp("claim_check-logs"),
        socket_dir=Path(tempfile.mkdtemp(prefix=f"asya-cc-{run_id}-", dir="/tmp")),
    )
    bucket = f"asya-test-{run_id}-payloads"
    s3 = boto3.session.Session().client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    broker = Broker(suite.rabbitmq_url, suite.exchange)
    broker.open()
    queues = [suite.happy_end, suite.error_end, *(suite.q(f"cc-{a}") for a in ACTORS)]
    for queue in queues:
        broker.declare_queue(queue)
    mesh = OffloadMesh(
        suite,
        broker,
        broker.watch(suite.happy_end),
        broker.watch(suite.error_end),
        bucket,
        s3,
        ClaimCheck(S3Store(bucket, PREFIX, client=s3), threshold=256 * 1024),
    )
    store_env = {
        "ASYA_PAYLOAD_STORE_URL": f"s3://{bucket}/{PREFIX}",
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "ASYA_RUNTIME_TIMEOUT": "60s",
    }
    processes = Processes(suite)
    try:
        started = {
            mesh.q(actor): processes.actor(actor, handler, mesh.q(actor), suite.env(store_env))
            for actor, handler in ACTORS.items()
        }
        wait_consuming(broker, started, timeout=100)
        yield mesh
    finally:
        processes.stop_all()
        broker.stop_watching()
        for queue in queues:
            broker.delete_queue(queue)
        broker.delete_exchange()
        broker.close()
        shutil.rmtree(suite.socket_dir, ignore_errors=True)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.delete_bucket(Bucket=bucket)
