"""The sidecar's Prometheus metrics (names and labels: docs/reference/sidecar.md#metrics).

Each sidecar has its own ``CollectorRegistry`` (no process-global state, so tests and several
sidecars in one process never clash). Labelled children are cached because ``.labels()`` on the
hot path costs more than the increment itself.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from asya.sidecar.settings import CustomMetric

SIZE_BUCKETS = (256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 104857600)


class SidecarMetrics:
    """Every metric of one sidecar, registered in its own registry."""

    def __init__(
        self,
        namespace: str = "asya_actor",
        queue: str = "",
        transport: str = "",
        custom: tuple[CustomMetric, ...] = (),
    ) -> None:
        self.registry = CollectorRegistry()
        self.queue = queue
        self.transport = transport
        r = self.registry
        self.received = Counter(
            "messages_received", "Messages taken from the queue", ["queue", "transport"],
            namespace=namespace, registry=r,
        )  # fmt: skip
        self.processed = Counter(
            "messages_processed", "Messages finished, by outcome", ["queue", "status"],
            namespace=namespace, registry=r,
        )  # fmt: skip
        self.sent = Counter(
            "messages_sent", "Messages published", ["destination_queue", "message_type"],
            namespace=namespace, registry=r,
        )  # fmt: skip
        self.failed = Counter(
            "messages_failed", "Messages that failed, by reason", ["queue", "reason"],
            namespace=namespace, registry=r,
        )  # fmt: skip
        self.runtime_errors = Counter(
            "runtime_errors", "Errors returned by or about the runtime", ["queue", "error_type"],
            namespace=namespace, registry=r,
        )  # fmt: skip
        self.active = Gauge(
            "active_messages", "Messages being processed now", namespace=namespace, registry=r
        )
        self.processing_duration = Histogram(
            "processing_duration_seconds", "Time from receipt to settlement", ["queue"],
            namespace=namespace, registry=r,
        )  # fmt: skip
        self.runtime_duration = Histogram(
            "runtime_execution_duration_seconds", "Time spent in the runtime call", ["queue"],
            namespace=namespace, registry=r,
        )  # fmt: skip
        self.send_duration = Histogram(
            "queue_send_duration_seconds",
            "Time to publish one message (until confirmed; an offloaded payload's upload included)",
            ["destination_queue", "transport"], namespace=namespace, registry=r,
        )  # fmt: skip
        self.message_size = Histogram(
            "message_size_bytes", "Message sizes", ["direction"], buckets=SIZE_BUCKETS,
            namespace=namespace, registry=r,
        )  # fmt: skip
        self.custom: dict[str, Any] = {}
        for spec in custom:
            self.custom[spec.name] = _custom_metric(spec, namespace, r)
        self._received = self.received.labels(queue, transport)
        self._processing = self.processing_duration.labels(queue)
        self._runtime = self.runtime_duration.labels(queue)
        self._size_in = self.message_size.labels("received")
        self._size_out = self.message_size.labels("sent")
        self._cache: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._cache.get(key)
        if child is None:
            child = self._cache[key] = metric.labels(*labels)
        return child

    def message_received(self, size: int) -> None:
        self._received.inc()
        self._size_in.observe(size)
        self.active.inc()

    def message_finished(self, status: str, seconds: float) -> None:
        self._child(self.processed, self.queue, status).inc()
        self._processing.observe(seconds)
        self.active.dec()

    def message_failed(self, reason: str) -> None:
        self._child(self.failed, self.queue, reason).inc()

    def runtime_called(self, seconds: float) -> None:
        self._runtime.observe(seconds)

    def runtime_error(self, error_type: str) -> None:
        self._child(self.runtime_errors, self.queue, error_type).inc()

    def message_sent(self, queue: str, kind: str, size: int, seconds: float) -> None:
        self._child(self.sent, queue, kind).inc()
        self._child(self.send_duration, queue, self.transport).observe(seconds)
        self._size_out.observe(size)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _custom_metric(spec: CustomMetric, namespace: str, registry: CollectorRegistry) -> Any:
    name = spec.name
    prefix = f"{namespace}_"
    if name.startswith(prefix):
        name = name[len(prefix) :]
    if spec.type == "counter":
        return Counter(name, spec.help, spec.labels, namespace=namespace, registry=registry)
    if spec.type == "gauge":
        return Gauge(name, spec.help, spec.labels, namespace=namespace, registry=registry)
    if spec.buckets:
        return Histogram(
            name, spec.help, spec.labels, namespace=namespace, registry=registry,
            buckets=spec.buckets,
        )  # fmt: skip
    return Histogram(name, spec.help, spec.labels, namespace=namespace, registry=registry)
