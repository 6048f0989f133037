"""OpenTelemetry traces for the gateway, the sidecar and the crew (docs/observability.md#traces).

A job is one trace. Its context travels in the message's top-level ``trace`` object
(docs/reference/message.md#trace): ``{"traceparent": ..., "tracestate"?: ...}`` in W3C Trace
Context form. Tracing is on only when an OTLP endpoint is configured with the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (or, in tests,
``ASYA_TEST_SPAN_FILE``) and the ``otel`` extra is installed; otherwise :func:`setup_tracing`
returns None and callers skip all tracing work. OpenTelemetry is imported only then, so the
processes start and run without it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.trace import Span, SpanKind, Tracer

logger = logging.getLogger(__name__)

#: The message's field that carries the trace context.
TRACE_FIELD = "trace"
#: Test-only: each process appends its finished spans to this file as JSON lines.
SPAN_FILE_VARIABLE = "ASYA_TEST_SPAN_FILE"
_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def trace_carrier(message: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The message's W3C carrier (``traceparent`` and maybe ``tracestate``), or None."""
    trace = message.get(TRACE_FIELD) if message is not None else None
    if not isinstance(trace, dict) or not isinstance(trace.get("traceparent"), str):
        return None
    return {key: value for key, value in trace.items() if isinstance(value, str)}


def tracing_wanted(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces (an OTLP endpoint, or the test span file)."""
    if (environ.get("OTEL_SDK_DISABLED") or "").strip().lower() == "true":
        return False
    if (environ.get("OTEL_TRACES_EXPORTER") or "").strip().lower() == "none":
        return False
    return any(environ.get(name) for name in (*_ENDPOINT_VARIABLES, SPAN_FILE_VARIABLE))


class Tracing:
    """This process's tracer, with the message-carrier conversions every component needs."""

    def __init__(self, provider: TracerProvider, service: str) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.service = service
        self.tracer: Tracer = provider.get_tracer("asya")
        self._propagator = TraceContextTextMapPropagator()

    def context_of(self, carrier: Mapping[str, str] | None) -> Context | None:
        """The parent context a carrier names (None: the span starts a new trace)."""
        return self._propagator.extract(carrier) if carrier else None

    def start(
        self,
        name: str,
        *,
        parent: Mapping[str, str] | Span | None,
        kind: SpanKind,
        attributes: Mapping[str, Any],
    ) -> Span:
        """Start a span under ``parent`` (a message's carrier or a span of this process)."""
        from opentelemetry import trace

        if parent is None or isinstance(parent, Mapping):
            context = self.context_of(parent)
        else:
            context = trace.set_span_in_context(parent)
        return self.tracer.start_span(name, context=context, kind=kind, attributes=attributes)

    def carrier(self, span: Span) -> dict[str, str]:
        """The ``trace`` object that makes ``span`` the parent of the next hop's spans."""
        from opentelemetry import trace

        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        return carrier


_active: Tracing | None = None
_setup_lock = threading.Lock()


def active() -> Tracing | None:
    """The tracing set up in this process, or None when it is off."""
    return _active


def setup_tracing(service: str, environ: Mapping[str, str] | None = None) -> Tracing | None:
    """Turn tracing on for this process when the environment asks for it (idempotent).

    ``service`` is the default ``service.name``; ``OTEL_SERVICE_NAME`` (and the other
    ``OTEL_*`` variables, read by the SDK and its OTLP exporter) override it. When traces are
    wanted but the ``otel`` extra is missing, one warning says so and tracing stays off.
    """
    global _active
    env = os.environ if environ is None else environ
    if not tracing_wanted(env):
        return None
    with _setup_lock:
        if _active is not None:
            return _active
        try:
            _active = _build(service, env)
        except ImportError as exc:
            logger.warning(
                "traces are configured but OpenTelemetry is not installed (%s): "
                "pip install 'asya[otel]'; tracing stays off",
                exc,
            )
            return None
    return _active


def _build(service: str, env: Mapping[str, str]) -> Tracing:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    attributes = {} if env.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attributes))
    if any(env.get(name) for name in _ENDPOINT_VARIABLES):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    span_file = env.get(SPAN_FILE_VARIABLE)
    if span_file:
        # written as each span ends: a runtime worker leaves with os._exit, without flushing
        provider.add_span_processor(SimpleSpanProcessor(_span_file_exporter(span_file)))
    # Global, so that a handler's own OpenTelemetry spans in this process use it as well.
    trace.set_tracer_provider(provider)
    name = provider.resource.attributes.get(SERVICE_NAME, service)
    logger.info("tracing on: service.name %s", name)
    return Tracing(provider, str(name))


def _span_file_exporter(path: str) -> Any:
    """A SpanExporter appending each finished span as one JSON line (tests only)."""
    import orjson
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class SpanFileExporter(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            lines = b"".join(orjson.dumps(span_record(span)) + b"\n" for span in spans)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, lines)  # one append per batch: processes share the file
            finally:
                os.close(fd)
            return SpanExportResult.SUCCESS

    return SpanFileExporter()


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """A finished span as plain JSON (the test span file's line format)."""
    context = span.context
    assert context is not None
    return {
        "name": span.name,
        "service": span.resource.attributes.get("service.name"),
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_span_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "kind": span.kind.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


def handler_parent(message: Mapping[str, Any] | None = None) -> Context | None:
    """For a handler's own spans: the context of the runtime call that runs it.

    A message-mode handler passes its message; a payload-mode one calls it without arguments,
    and the context comes from ``TRACEPARENT``/``TRACESTATE``, which the runtime sets for the
    length of each call whose message carries a trace. Use it as
    ``tracer.start_as_current_span(name, context=handler_parent(...))``.
    """
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier = trace_carrier(message)
    if carrier is None:
        parent = os.environ.get("TRACEPARENT")
        if not parent:
            return None
        carrier = {"traceparent": parent}
        state = os.environ.get("TRACESTATE")
        if state:
            carrier["tracestate"] = state
    return TraceContextTextMapPropagator().extract(carrier)
