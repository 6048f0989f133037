"""asya.tracing: when tracing is on, and the context handed to handlers
(docs/observability.md#traces); the runtime passes it on as data
(docs/reference/message.md#trace)."""

from __future__ import annotations

import json
import logging
import os

import pytest
from opentelemetry import trace

from asya import runtime
from asya.tracing import handler_parent, setup_tracing, trace_carrier, tracing_wanted

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("environ", "wanted"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"ASYA_TEST_SPAN_FILE": "/tmp/spans"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_is_on_only_with_an_endpoint(environ: dict[str, str], wanted: bool) -> None:
    assert tracing_wanted(environ) is wanted


def test_without_an_endpoint_nothing_is_set_up() -> None:
    assert setup_tracing("asya-test", {}) is None


def test_the_carrier_is_read_from_the_trace_field() -> None:
    assert trace_carrier({"trace": {"traceparent": PARENT, "x": 1}}) == {"traceparent": PARENT}
    assert trace_carrier({"trace": {"tracestate": "a=b"}}) is None
    assert trace_carrier({"trace": "00-…"}) is None
    assert trace_carrier({}) is None


def test_a_handler_gets_its_parent_from_the_message_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from_message = handler_parent({"trace": {"traceparent": PARENT}})
    assert f"{trace.get_current_span(from_message).get_span_context().span_id:016x}" == (
        "00f067aa0ba902b7"
    )
    monkeypatch.delenv("TRACEPARENT", raising=False)
    assert handler_parent() is None
    monkeypatch.setenv("TRACEPARENT", PARENT)
    context = trace.get_current_span(handler_parent()).get_span_context()
    assert f"{context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_the_runtime_sets_traceparent_for_the_call_only() -> None:
    seen: list[tuple[str | None, str | None]] = []

    def handler(payload: object) -> list[object]:
        seen.append((os.environ.get("TRACEPARENT"), os.environ.get("TRACESTATE")))
        return [payload]

    config = runtime.RuntimeConfig.from_env({"ASYA_HANDLER": "x.y"})
    message = {
        "route": {"steps": ["a"], "current": 0},
        "payload": {},
        "trace": {"traceparent": PARENT, "tracestate": "k=v"},
    }
    runtime.process_request(json.dumps(message).encode(), handler, config)
    del message["trace"]
    runtime.process_request(json.dumps(message).encode(), handler, config)
    assert seen == [(PARENT, "k=v"), (None, None)]
    assert "TRACEPARENT" not in os.environ


def test_runtime_json_logs_keep_extra_fields() -> None:
    record = logging.makeLogRecord(
        {"name": "h", "levelname": "INFO", "msg": "done", "job_id": "j1", "step_index": 2}
    )
    line = json.loads(runtime.JsonLogFormatter().format(record))
    assert {"time", "level", "logger", "message", "pid"} <= line.keys()
    assert (line["job_id"], line["step_index"]) == ("j1", 2)


def test_every_process_logs_json_with_the_same_keys() -> None:
    from asya.logconfig import JsonFormatter

    record = logging.makeLogRecord({"name": "h", "levelname": "INFO", "msg": "m", "job_id": "j"})
    ours = json.loads(JsonFormatter().format(record))
    theirs = json.loads(runtime.JsonLogFormatter().format(record))
    assert ours.keys() == theirs.keys()
