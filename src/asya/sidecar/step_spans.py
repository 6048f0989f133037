"""A span per processed message, with the runtime call as its child
(docs/reference/sidecar.md#traces).

The step span's parent is the message's ``trace`` (the gateway's call, or the step before);
the runtime receives the message with ``trace`` naming the runtime-call span, so a handler's
own spans hang under it; every message the step publishes (outputs, error-end) carries the
step span, except a retry, which keeps the incoming ``trace`` so that each attempt is a sibling
under the same parent. Added to the sidecar only when tracing is on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from asya.message import encode_json
from asya.sidecar.hooks import Hook, MessageContext
from asya.sidecar.message_log import message_fields, outcome_of
from asya.tracing import TRACE_FIELD, Tracing, trace_carrier

if TYPE_CHECKING:
    from opentelemetry.trace import Span

_STEP = "trace.step"
_RUNTIME = "trace.runtime"
#: Outcomes that leave the step span unmarked; every other one (a retry too) is an error.
_GOOD_OUTCOMES = frozenset({"success", "empty_response", "terminal_consumed"})


class StepSpanHook(Hook):
    def __init__(self, tracing: Tracing, queue: str, clock: Callable[[], float]) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self._tracing = tracing
        self._queue = queue
        self._clock = clock
        self._consumer = SpanKind.CONSUMER
        self._client = SpanKind.CLIENT
        self._error = Status(StatusCode.ERROR)

    async def before_runtime(self, ctx: MessageContext) -> None:
        message = ctx.message
        assert message is not None
        incoming = trace_carrier(message)
        attributes: dict[str, Any] = {"asya.queue": self._queue}
        for key, value in message_fields(ctx).items():
            if value is not None:
                attributes[f"asya.{key}"] = value
        waited = self._clock() - ctx.started
        step = self._tracing.tracer.start_span(
            f"process {self._queue}",
            context=self._tracing.context_of(incoming),
            kind=self._consumer,
            attributes=attributes,
            start_time=time.time_ns() - int(waited * 1e9),
        )
        runtime = self._tracing.start(
            "runtime call",
            parent=step,
            kind=self._client,
            attributes={"asya.job_id": ctx.job_id or "", "asya.queue": self._queue},
        )
        ctx.state[_STEP] = step
        ctx.state[_RUNTIME] = runtime
        ctx.trace = self._tracing.carrier(step)
        ctx.runtime_body = encode_json({**message, TRACE_FIELD: self._tracing.carrier(runtime)})

    def after_runtime(self, ctx: MessageContext, seconds: float, error: str | None) -> None:
        runtime: Span | None = ctx.state.pop(_RUNTIME, None)
        if runtime is None:
            return
        if error is not None:
            runtime.set_attribute("asya.error", error)
            runtime.set_status(self._error)
        runtime.end()

    def on_finished(self, ctx: MessageContext, status: str | None, reason: str | None) -> None:
        runtime: Span | None = ctx.state.pop(_RUNTIME, None)
        if runtime is not None:  # the call never answered (requeued)
            runtime.end()
        step: Span | None = ctx.state.pop(_STEP, None)
        if step is None:
            return
        outcome = outcome_of(status, reason)
        step.set_attribute("asya.outcome", outcome)
        if status is not None and outcome not in _GOOD_OUTCOMES:
            step.set_status(self._error)
        step.end()
