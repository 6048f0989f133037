"""Handlers of the traces suite: a fan-out, a handler with spans of its own, a plain step."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from asya.tracing import handler_parent, setup_tracing

# A handler sets up its own OpenTelemetry (here with Asya's helper, which reads the same
# OTEL_* / ASYA_TEST_SPAN_FILE variables); its spans go under the runtime call.
setup_tracing("trace-test-handler")
tracer = trace.get_tracer(__name__)


def split(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"word": word} for word in payload["words"]]


def upper(payload: dict[str, Any]) -> dict[str, Any]:
    with tracer.start_as_current_span("upper the word", context=handler_parent()) as span:
        span.set_attribute("word", payload["word"])
        return {"word": payload["word"].upper()}


def exclaim(payload: dict[str, Any]) -> dict[str, Any]:
    return {"word": payload["word"] + "!"}
