"""Prometheus metrics of one gateway app, in a registry of its own (tests run many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "GatewayMetrics"]


class GatewayMetrics:
    def __init__(self, namespace: str = "asya_gateway") -> None:
        self.registry = CollectorRegistry()
        self.jobs_created = Counter(
            "jobs_created_total",
            "Jobs created, by tool.",
            ["tool"],
            namespace=namespace,
            registry=self.registry,
        )
        self.jobs_finished = Counter(
            "jobs_finished_total",
            "Jobs that reached a terminal status, by tool and status.",
            ["tool", "status"],
            namespace=namespace,
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "request_duration_seconds",
            "HTTP request latency, by method, route and status.",
            ["method", "route", "status"],
            namespace=namespace,
            registry=self.registry,
        )
        self.sse_clients = Gauge(
            "sse_clients", "Open SSE streams.", namespace=namespace, registry=self.registry
        )
        self.publish_failures = Counter(
            "publish_failures_total",
            "Jobs whose first publish failed, by tool.",
            ["tool"],
            namespace=namespace,
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
