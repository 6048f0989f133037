"""Prometheus metrics: names and labels of docs/reference/sidecar.md#metrics, custom metrics,
/metrics and /health."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from asya.sidecar.metrics import SidecarMetrics
from asya.sidecar.settings import CustomMetric
from tests.helpers import free_port

from .conftest import Harness, make_message

pytestmark = pytest.mark.timeout(30)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


async def test_metrics_and_health_are_served_with_the_spec_names(harness: Harness) -> None:
    async def selective(message: dict[str, Any]) -> Any:
        if message["payload"].get("fail"):
            return [{"error": "processing_error", "details": {"message": "x", "type": "E"}}]
        return [message]

    harness.runtime.behaviour = selective
    port = free_port()
    await harness.start(metrics_enabled=True, metrics_host="127.0.0.1", metrics_port=port)
    await harness.send(make_message(["step-a", "step-b"]))
    await harness.send(make_message(["step-a"], payload={"fail": True}))
    await harness.take("step-b")
    await harness.take("error-end")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        health = await client.get("/health")
        assert health.status_code == 200
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert (await client.get("/nothing")).status_code == 404
    found = samples(response.text)

    def value(name: str, **labels: str) -> float:
        return found[(name, frozenset(labels.items()))]

    assert value("asya_actor_messages_received_total", queue="step-a", transport="memory") == 2
    assert value("asya_actor_messages_processed_total", queue="step-a", status="success") == 1
    assert value("asya_actor_messages_processed_total", queue="step-a", status="error") == 1
    assert (
        value("asya_actor_messages_sent_total", destination_queue="step-b", message_type="routing")
        == 1
    )
    assert (
        value(
            "asya_actor_messages_sent_total",
            destination_queue="error-end",
            message_type="error_end",
        )
        == 1
    )
    assert value("asya_actor_messages_failed_total", queue="step-a", reason="processing_error") == 1
    assert (
        value("asya_actor_runtime_errors_total", queue="step-a", error_type="processing_error") == 1
    )
    assert value("asya_actor_active_messages") == 0
    assert value("asya_actor_processing_duration_seconds_count", queue="step-a") == 2
    assert value("asya_actor_runtime_execution_duration_seconds_count", queue="step-a") == 2
    assert (
        value(
            "asya_actor_queue_send_duration_seconds_count",
            destination_queue="step-b",
            transport="memory",
        )
        == 1
    )
    assert value("asya_actor_message_size_bytes_count", direction="received") == 2
    assert value("asya_actor_message_size_bytes_count", direction="sent") == 2


def test_the_namespace_and_custom_metrics_are_applied() -> None:
    metrics = SidecarMetrics(
        "my_ns",
        queue="q",
        transport="memory",
        custom=(
            CustomMetric("tokens_total", "counter", "tokens used", ("model",)),
            CustomMetric("batch", "histogram", "batch size", (), (1.0, 8.0)),
            CustomMetric("loaded", "gauge", "model loaded"),
        ),
    )
    metrics.custom["tokens_total"].labels("small").inc(3)
    metrics.custom["batch"].observe(4)
    metrics.custom["loaded"].set(1)
    metrics.message_received(10)
    found = samples(metrics.exposition().decode())
    assert found[("my_ns_tokens_total", frozenset({("model", "small")}))] == 3
    assert found[("my_ns_batch_bucket", frozenset({("le", "8.0")}))] == 1
    assert found[("my_ns_loaded", frozenset())] == 1
    labels = frozenset({("queue", "q"), ("transport", "memory")})
    assert found[("my_ns_messages_received_total", labels)] == 1


def test_two_sidecars_in_one_process_keep_separate_registries() -> None:
    first = SidecarMetrics(queue="a")
    second = SidecarMetrics(queue="b")
    first.message_received(1)
    assert b'queue="a"' in first.exposition()
    assert b'queue="a"' not in second.exposition()
