"""The sidecar's Prometheus endpoint after a known mix of outcomes
(docs/reference/sidecar.md#metrics)."""

from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import free_port
from tests.integration.sidecar_vs_runtime.broker import Broker, Inbox
from tests.integration.sidecar_vs_runtime.harness import (
    Processes,
    SuiteConfig,
    message,
    wait_consuming,
)

pytestmark = pytest.mark.services

CUSTOM = [{"name": "images_total", "type": "counter", "help": "Images seen", "labels": ["kind"]}]


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_received_processed_sent_and_errors_by_label(
    suite: SuiteConfig,
    broker: Broker,
    happy_end: Inbox,
    error_end: Inbox,
    procs: Processes,
    tid: str,
) -> None:
    queue = suite.q(f"metrics-{tid[2:10]}")
    port = free_port()
    env = suite.env(
        {"ASYA_METRICS_ADDR": f"127.0.0.1:{port}", "ASYA_CUSTOM_METRICS": json.dumps(CUSTOM)}
    )
    actor = procs.actor(f"metrics-{tid[2:10]}", "conditional", queue, env)
    wait_consuming(broker, {queue: actor})
    actions = ["success", "error", "empty", "fanout"]  # fanout gives 3 outputs
    broker.publish_many(
        queue, [message([queue], {"test_id": tid, "action": action}) for action in actions]
    )
    happy_end.wait_for(tid, count=1 + 1 + 3)
    error_end.wait_for(tid)

    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200
    text = httpx.get(f"{base}/metrics", timeout=10).text
    samples = _samples(text)

    def value(name: str, **labels: str) -> float:
        return samples.get((f"asya_actor_{name}", frozenset(labels.items())), 0.0)

    assert value("messages_received_total", queue=queue, transport="rabbitmq") == 4
    assert value("messages_processed_total", queue=queue, status="success") == 2
    assert value("messages_processed_total", queue=queue, status="error") == 1
    assert value("messages_processed_total", queue=queue, status="empty_response") == 1
    assert (
        value("messages_sent_total", destination_queue=suite.happy_end, message_type="happy_end")
        == 5
    )
    assert (
        value("messages_sent_total", destination_queue=suite.error_end, message_type="error_end")
        == 1
    )
    assert value("runtime_errors_total", queue=queue, error_type="processing_error") == 1
    failed = sum(
        v
        for (name, labels), v in samples.items()
        if name == "asya_actor_messages_failed_total" and ("queue", queue) in labels
    )
    assert failed == 1
    assert value("active_messages") == 0
    assert value("processing_duration_seconds_count", queue=queue) == 4
    assert value("runtime_execution_duration_seconds_count", queue=queue) == 4
    assert (
        value(
            "queue_send_duration_seconds_count",
            destination_queue=suite.happy_end,
            transport="rabbitmq",
        )
        == 5
    )
    assert "# TYPE asya_actor_images_total counter" in text
