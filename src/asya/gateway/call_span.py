"""The span that starts a job's trace: the tool call, from REST or MCP
(docs/reference/gateway-api.md#traces)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from asya.tracing import active


@contextlib.contextmanager
def tool_call_span(
    tool: str, job_id: str, first_queue: str, started_ns: int
) -> Iterator[dict[str, str] | None]:
    """Open ``call <tool>`` from ``started_ns``; yields the first message's ``trace`` (None
    when tracing is off)."""
    tracing = active()
    if tracing is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    with tracing.tracer.start_as_current_span(  # an exception marks the span failed
        f"call {tool}",
        kind=SpanKind.PRODUCER,
        attributes={"asya.tool": tool, "asya.job_id": job_id, "asya.queue": first_queue},
        start_time=started_ns,
    ) as span:
        yield tracing.carrier(span)
