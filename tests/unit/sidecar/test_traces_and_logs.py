"""The sidecar's spans, the ``trace`` field on what it publishes, and its per-message log line
(docs/reference/sidecar.md#traces, docs/reference/sidecar.md#logs)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from asya.sidecar.main import Sidecar
from asya.sidecar.message_log import outcome_of
from asya.sidecar.step_spans import StepSpanHook
from asya.tracing import Tracing
from asya.transports.memory import MemoryTransport
from tests.unit.sidecar.conftest import DROP, Harness, echo, make_message

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01", "tracestate": "k=v"}


@pytest.fixture
def spans() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Tracing(provider, "asya-sidecar"), exporter
    provider.shutdown()


async def start_traced(harness: Harness, tracing: Tracing, **changes: Any) -> None:
    harness.settings = replace(harness.settings, **changes)
    hook = StepSpanHook(tracing, harness.queue, time.monotonic)
    harness.sidecar = Sidecar(
        harness.settings,
        transport=MemoryTransport(harness.settings.transport_url[9:]),
        extra_hooks=(hook,),
    )
    harness.task = asyncio.create_task(harness.sidecar.run())


def span_id(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.span_id:016x}"


def parent_id(carrier: dict[str, str]) -> str:
    return carrier["traceparent"].split("-")[2]


async def test_outputs_carry_the_step_span_and_the_runtime_sees_its_call_span(
    harness: Harness, spans: tuple[Tracing, InMemorySpanExporter]
) -> None:
    tracing, exporter = spans
    await start_traced(harness, tracing)
    await harness.send(make_message(["step-a", "step-b"], job_id="j1", trace=INCOMING))
    out = await harness.take("step-b")
    await harness.stop()

    finished = {span.name: span for span in exporter.get_finished_spans()}
    step, runtime = finished["process step-a"], finished["runtime call"]
    assert f"{step.context.trace_id:032x}" == TRACE_ID  # type: ignore[union-attr]
    assert step.parent is not None
    assert f"{step.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert runtime.parent is not None
    assert runtime.parent.span_id == step.context.span_id
    assert dict(step.attributes or {}) == {
        "asya.queue": "step-a",
        "asya.job_id": "j1",
        "asya.step": "step-a",
        "asya.step_index": 0,
        "asya.attempt": 0,
        "asya.outcome": "success",
    }
    assert parent_id(out["trace"]) == span_id(step)
    assert out["trace"]["tracestate"] == "k=v"
    sent_to_runtime = orjson.loads(harness.runtime.requests[0])
    assert parent_id(sent_to_runtime["trace"]) == span_id(runtime)


async def test_every_branch_of_a_fan_out_has_the_step_as_parent(
    harness: Harness, spans: tuple[Tracing, InMemorySpanExporter]
) -> None:
    async def fan_out(message: dict[str, Any]) -> Any:
        return [{**message, "payload": {"i": i}} for i in range(3)]

    tracing, exporter = spans
    harness.runtime.behaviour = fan_out
    await start_traced(harness, tracing)
    await harness.send(make_message(["step-a", "step-b"], job_id="j1", trace=INCOMING))
    outs = [await harness.take("step-b") for _ in range(3)]
    await harness.stop()

    (step,) = [s for s in exporter.get_finished_spans() if s.name == "process step-a"]
    assert {parent_id(out["trace"]) for out in outs} == {span_id(step)}


async def test_a_retry_keeps_the_incoming_trace_so_attempts_are_siblings(
    harness: Harness, spans: tuple[Tracing, InMemorySpanExporter]
) -> None:
    calls = 0

    async def crash_once(message: dict[str, Any]) -> Any:
        nonlocal calls
        calls += 1
        return DROP if calls == 1 else await echo(message)

    tracing, exporter = spans
    harness.runtime.behaviour = crash_once
    await start_traced(harness, tracing, max_retries=1)
    await harness.send(make_message(["step-a", "step-b"], job_id="j1", trace=INCOMING))
    out = await harness.take("step-b")
    await harness.stop()

    steps = [s for s in exporter.get_finished_spans() if s.name == "process step-a"]
    assert [dict(s.attributes or {})["asya.outcome"] for s in steps] == ["retried", "success"]
    assert [dict(s.attributes or {})["asya.attempt"] for s in steps] == [0, 1]
    assert {f"{s.parent.span_id:016x}" for s in steps if s.parent} == {"00f067aa0ba902b7"}
    assert parent_id(out["trace"]) == span_id(steps[1])


async def test_error_end_carries_the_failing_step_span(
    harness: Harness, spans: tuple[Tracing, InMemorySpanExporter]
) -> None:
    async def fail(message: dict[str, Any]) -> Any:
        return [{"error": "processing_error", "details": {"message": "no", "type": "ValueError"}}]

    tracing, exporter = spans
    harness.runtime.behaviour = fail
    await start_traced(harness, tracing)
    await harness.send(make_message(["step-a", "step-b"], job_id="j1", trace=INCOMING))
    error_end = await harness.take("error-end")
    await harness.stop()

    (step,) = [s for s in exporter.get_finished_spans() if s.name == "process step-a"]
    assert dict(step.attributes or {})["asya.outcome"] == "processing_error"
    assert step.status.status_code.name == "ERROR"
    assert parent_id(error_end["trace"]) == span_id(step)


async def test_without_tracing_the_trace_field_passes_through(harness: Harness) -> None:
    async def fail(message: dict[str, Any]) -> Any:
        return [{"error": "processing_error", "details": {"message": "no", "type": "ValueError"}}]

    await harness.start()
    await harness.send(make_message(["step-a", "step-b"], trace=INCOMING))
    assert (await harness.take("step-b"))["trace"] == INCOMING
    harness.runtime.behaviour = fail
    await harness.send(make_message(["step-a", "step-b"], trace=INCOMING))
    assert (await harness.take("error-end"))["trace"] == INCOMING


async def test_one_info_line_per_finished_message(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="asya.sidecar.messages")
    await harness.start()
    await harness.send(
        make_message(["step-a", "step-b"], job_id="j1", branch=[{"index": 1, "count": 2}])
    )
    await harness.take("step-b")
    await harness.stop()

    (record,) = [r for r in caplog.records if r.name == "asya.sidecar.messages"]
    assert record.levelname == "INFO"
    assert record.getMessage().startswith("job j1 step step-a [0] branch 1/2: success in ")
    fields = record.__dict__
    assert (fields["job_id"], fields["step"], fields["step_index"]) == ("j1", "step-a", 0)
    assert (fields["outcome"], fields["branch"], fields["queue"]) == ("success", "1/2", "step-a")
    assert fields["duration_ms"] > 0


@pytest.mark.parametrize(
    ("status", "reason", "outcome"),
    [
        ("success", None, "success"),
        ("error", None, "retried"),
        ("error", "retries_exhausted", "retries_exhausted"),
        (None, None, "requeued"),
        (None, "publish_failed", "publish_failed"),
        ("terminal_consumed", None, "terminal_consumed"),
    ],
)
def test_outcome_names(status: str | None, reason: str | None, outcome: str) -> None:
    assert outcome_of(status, reason) == outcome
