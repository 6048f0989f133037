"""Actors with payloads by reference, once on RabbitMQ and once on SQS (moto's server), with
moto's S3 server (the run's moto process, the SQS tests' too) for the payloads. The handlers
are sidecar_vs_runtime's; queues and bucket are this run's and are deleted at the end."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import orjson
import pytest

from asya.payloads import ClaimCheck
from asya.payloads.stores import S3Store
from tests.integration.sidecar_on_transport import TransportClient
from tests.integration.sidecar_vs_runtime.broker import Broker, Inbox
from tests.integration.sidecar_vs_runtime.harness import Processes, SuiteConfig, message

#: suite actor name -> sidecar_vs_runtime handler; ``bare-*`` actors have no payload store.
ACTORS = {"first": "echo", "fanout": "fanout", "last": "echo", "bare-grow": "large_payload"}
PREFIX = "payloads"


@dataclass
class OffloadMesh:
    transport: str
    suite: SuiteConfig
    client: TransportClient
    happy_end: Inbox
    error_end: Inbox
    bucket: str
    s3: Any
    claim_check: ClaimCheck
    processes: Processes = field(repr=False)

    def q(self, actor: str) -> str:
        return self.suite.q(f"cc-{actor}")

    def send(self, steps: list[str], payload: Any, **fields: Any) -> None:
        """Publish a message to its first step, its payload by reference when it is large (as
        a gateway with the store does: SQS would refuse it inline)."""
        body = orjson.dumps(message([self.q(s) for s in steps], payload, **fields))
        if len(body) > self.claim_check.threshold:
            body = self.client.call(self.claim_check.offload(body))
        self.client.call(self.client.transport.publish(self.q(steps[0]), body))

    def log(self, actor: str) -> str:
        return next(p.tail() for p in self.processes.started if p.name == actor)


@pytest.fixture(scope="package")
def s3_endpoint(sqs_url: str) -> str:
    return dict(parse_qsl(urlsplit(sqs_url).query))["endpoint"]


@pytest.fixture(scope="package", params=["rabbitmq", "sqs"])
def offload_mesh(
    request: pytest.FixtureRequest,
    run_id: str,
    s3_endpoint: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OffloadMesh]:
    transport = request.param
    rabbitmq = transport == "rabbitmq"
    url = request.getfixturevalue("rabbitmq_url" if rabbitmq else "sqs_url")
    suite = SuiteConfig(
        rabbitmq_url=url,
        exchange=f"asya-test-{run_id}-cc" if rabbitmq else "",
        prefix=f"asya-test-{run_id}-cc-{transport}-",
        log_dir=tmp_path_factory.mktemp(f"claim_check-{transport}-logs"),
        socket_dir=Path(tempfile.mkdtemp(prefix=f"asya-cc-{run_id}-", dir="/tmp")),
    )
    bucket = f"asya-test-{run_id}-{transport}-payloads"
    s3 = boto3.session.Session().client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    client = TransportClient(url, suite.exchange)
    processes = Processes(suite)
    try:
        mesh = OffloadMesh(
            transport,
            suite,
            client,
            Inbox(suite.happy_end),
            Inbox(suite.error_end),
            bucket,
            s3,
            ClaimCheck(S3Store(bucket, PREFIX, client=s3), threshold=256 * 1024),
            processes,
        )
        for queue in [suite.happy_end, suite.error_end, *(mesh.q(a) for a in ACTORS)]:
            client.declare(queue)
        client.drain(mesh.happy_end)
        client.drain(mesh.error_end)
        store_env = {
            "ASYA_PAYLOAD_STORE_URL": f"s3://{bucket}/{PREFIX}",
            "AWS_ENDPOINT_URL": s3_endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "ASYA_RUNTIME_TIMEOUT": "60s",
        }
        for actor, handler in ACTORS.items():
            env = suite.env({} if actor.startswith("bare-") else store_env)
            if not rabbitmq:
                env.pop("ASYA_RABBITMQ_URL")
            processes.actor(actor, handler, mesh.q(actor), env)
        yield mesh
    finally:
        processes.stop_all()
        client.close()
        if rabbitmq:
            broker = Broker(url, suite.exchange)
            broker.open()
            broker.delete_exchange()
            broker.close()
        shutil.rmtree(suite.socket_dir, ignore_errors=True)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.delete_bucket(Bucket=bucket)
