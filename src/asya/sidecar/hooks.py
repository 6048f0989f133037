"""Cross-cutting concerns of message processing (metrics, progress) as hooks.

The processor calls every hook at fixed points of a message's life. A hook that raises is
logged and skipped: observing a message must never lose it. Hooks keep per-message state in
``MessageContext.state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from asya.message import Message
from asya.sidecar.metrics import SidecarMetrics
from asya.sidecar.progress_reporter import (
    ProgressReporter,
    completed_text,
    processing_text,
    received_text,
)
from asya.transports.base import IncomingMessage

logger = logging.getLogger(__name__)


@dataclass
class MessageContext:
    """What the processor knows about one delivery so far."""

    delivery: IncomingMessage
    body: bytes
    started: float
    message: Message | None = None
    job_id: str | None = None
    state: dict[str, Any] = field(default_factory=dict)
    #: How many outputs the runtime's answer is routed as (more than one: a fan-out).
    outputs: int = 0
    #: With tracing on: the ``trace`` the step's published messages carry, and the body given
    #: to the runtime in place of ``body`` (docs/reference/sidecar.md#traces).
    trace: dict[str, str] | None = None
    runtime_body: bytes | None = None

    @property
    def step_info(self) -> tuple[str, int, int]:
        """``(step name, index, total steps)`` of the step processing the message."""
        assert self.message is not None
        route = self.message["route"]
        steps, current = route["steps"], route["current"]
        step = steps[current] if current < len(steps) else ""
        return step, current, len(steps)


class Hook:
    """No-op base: override the points you need."""

    def on_received(self, ctx: MessageContext) -> None:
        """A delivery arrived (before parsing)."""

    async def before_runtime(self, ctx: MessageContext) -> None:
        """The message is valid and is about to be given to the runtime."""

    def after_runtime(self, ctx: MessageContext, seconds: float, error: str | None) -> None:
        """The runtime call ended (``error`` is the error code, if any)."""

    async def before_publish(self, ctx: MessageContext, succeeded: bool) -> None:
        """The results (or the error) are about to be published."""

    def on_sent(
        self, ctx: MessageContext, queue: str, kind: str, size: int, seconds: float
    ) -> None:
        """One message was published and confirmed."""

    def on_finished(self, ctx: MessageContext, status: str | None, reason: str | None) -> None:
        """The delivery was settled; ``status`` None means it was requeued untouched."""


class Hooks:
    """The ordered hook list; each call is contained so one hook cannot break the others.

    Each point calls only the hooks that override it (this runs several times per message).
    """

    def __init__(self, hooks: Sequence[Hook]) -> None:
        def overriding(point: str) -> tuple[Hook, ...]:
            return tuple(h for h in hooks if getattr(type(h), point) is not getattr(Hook, point))

        self._on_received = overriding("on_received")
        self._before_runtime = overriding("before_runtime")
        self._after_runtime = overriding("after_runtime")
        self._before_publish = overriding("before_publish")
        self._on_sent = overriding("on_sent")
        self._on_finished = overriding("on_finished")

    def on_received(self, ctx: MessageContext) -> None:
        for hook in self._on_received:
            try:
                hook.on_received(ctx)
            except Exception:
                logger.exception("hook %s.on_received failed", type(hook).__name__)

    async def before_runtime(self, ctx: MessageContext) -> None:
        for hook in self._before_runtime:
            try:
                await hook.before_runtime(ctx)
            except Exception:
                logger.exception("hook %s.before_runtime failed", type(hook).__name__)

    def after_runtime(self, ctx: MessageContext, seconds: float, error: str | None) -> None:
        for hook in self._after_runtime:
            try:
                hook.after_runtime(ctx, seconds, error)
            except Exception:
                logger.exception("hook %s.after_runtime failed", type(hook).__name__)

    async def before_publish(self, ctx: MessageContext, succeeded: bool) -> None:
        for hook in self._before_publish:
            try:
                await hook.before_publish(ctx, succeeded)
            except Exception:
                logger.exception("hook %s.before_publish failed", type(hook).__name__)

    def on_sent(
        self, ctx: MessageContext, queue: str, kind: str, size: int, seconds: float
    ) -> None:
        for hook in self._on_sent:
            try:
                hook.on_sent(ctx, queue, kind, size, seconds)
            except Exception:
                logger.exception("hook %s.on_sent failed", type(hook).__name__)

    def on_finished(self, ctx: MessageContext, status: str | None, reason: str | None) -> None:
        for hook in self._on_finished:
            try:
                hook.on_finished(ctx, status, reason)
            except Exception:
                logger.exception("hook %s.on_finished failed", type(hook).__name__)


class MetricsHook(Hook):
    """Feeds the Prometheus metrics."""

    def __init__(self, metrics: SidecarMetrics, clock: Any) -> None:
        self._metrics = metrics
        self._clock = clock

    def on_received(self, ctx: MessageContext) -> None:
        self._metrics.message_received(len(ctx.body))

    def after_runtime(self, ctx: MessageContext, seconds: float, error: str | None) -> None:
        self._metrics.runtime_called(seconds)
        if error is not None:
            self._metrics.runtime_error(error)

    def on_sent(
        self, ctx: MessageContext, queue: str, kind: str, size: int, seconds: float
    ) -> None:
        self._metrics.message_sent(queue, kind, size, seconds)

    def on_finished(self, ctx: MessageContext, status: str | None, reason: str | None) -> None:
        if reason is not None:
            self._metrics.message_failed(reason)
        if status is None:
            self._metrics.active.dec()
        else:
            self._metrics.message_finished(status, self._clock() - ctx.started)


class ProgressHook(Hook):
    """Reports ``received`` → ``processing`` → ``completed`` for messages with a job id.

    ``received`` and ``processing`` run in the background while the runtime works; both are
    awaited (or given up) before anything is published, and ``completed`` is sent before the
    results go out, so the gateway sees a step's reports before the next step's.
    """

    def __init__(self, reporter: ProgressReporter, actor_name: str, clock: Any) -> None:
        self._reporter = reporter
        self._actor = actor_name
        self._clock = clock

    async def before_runtime(self, ctx: MessageContext) -> None:
        if ctx.job_id is not None:
            ctx.state["progress"] = asyncio.create_task(self._early_reports(ctx))

    async def _early_reports(self, ctx: MessageContext) -> None:
        assert ctx.job_id is not None
        step, index, total = ctx.step_info
        await self._reporter.report(
            ctx.job_id,
            step=step,
            step_index=index,
            total_steps=total,
            status="received",
            message=received_text(len(ctx.body)),
            message_size_kb=round(len(ctx.body) / 1024, 2),
            **_branch_of(ctx),
        )
        await self._reporter.report(
            ctx.job_id,
            step=step,
            step_index=index,
            total_steps=total,
            status="processing",
            message=processing_text(self._actor),
            **_branch_of(ctx),
        )

    async def before_publish(self, ctx: MessageContext, succeeded: bool) -> None:
        task: asyncio.Task[None] | None = ctx.state.pop("progress", None)
        if task is None:
            return
        try:
            await task
        except Exception:
            logger.exception("progress reports for job %s failed", ctx.job_id)
        if succeeded and ctx.job_id is not None:
            step, index, total = ctx.step_info
            duration_ms = (self._clock() - ctx.started) * 1000
            await self._reporter.report(
                ctx.job_id,
                step=step,
                step_index=index,
                total_steps=total,
                status="completed",
                message=completed_text(duration_ms),
                duration_ms=round(duration_ms, 3),
                **_branch_of(ctx),
                **({"outputs": ctx.outputs} if ctx.outputs > 1 else {}),
            )

    def on_finished(self, ctx: MessageContext, status: str | None, reason: str | None) -> None:
        task: asyncio.Task[None] | None = ctx.state.pop("progress", None)
        if task is not None and not task.done():
            task.cancel()
        elif task is not None:
            with contextlib.suppress(BaseException):
                task.result()


def _branch_of(ctx: MessageContext) -> dict[str, Any]:
    """``{"branch": [...]}`` for a message of a fan-out branch, else nothing to add."""
    branch = ctx.message.get("branch") if ctx.message is not None else None
    return {"branch": branch} if branch else {}
