"""Processing one delivery: the nine steps of docs/reference/sidecar.md#per-message.

parse → deadline → progress → runtime call → route results or handle the error → publish
(confirmed) → ack. Decisions come from ``router`` (pure); side effects go through the transport,
the runtime client and the hooks; ``settling`` acks or nacks in one place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from asya.backoff import Backoff
from asya.envconfig import format_duration
from asya.errors import MessageTooLargeError, TransportError, UnroutableError
from asya.message import (
    Message,
    MessageError,
    attempt_of,
    deadline_passed,
    decode_json,
    encode_json,
    job_id_of,
    message_problem,
    parse_message,
)
from asya.payloads import REF_FIELD, ClaimCheck, InvalidReference, PayloadMissing
from asya.sidecar import router
from asya.sidecar.cancellations import CancelledJobs
from asya.sidecar.gate import RuntimeGate
from asya.sidecar.hooks import Hooks, MessageContext
from asya.sidecar.poison import PoisonGuard
from asya.sidecar.router import Failure, Publish
from asya.sidecar.runtime_client import (
    RuntimeClient,
    RuntimeCrashed,
    RuntimeTimeout,
    RuntimeUnavailable,
)
from asya.sidecar.settings import SidecarSettings
from asya.sidecar.settle import Settlement, settling
from asya.transports.base import IncomingMessage, Transport

logger = logging.getLogger(__name__)

#: After an abandoned (timed-out) call: the runtime's 1 s grace plus its worker replacement.
TIMEOUT_RECOVERY_PAUSE = 2.0
#: A message that could not be finished (its results were refused, or a bug) is held this long
#: before it is requeued, doubling with each such failure in a row up to the maximum: a broker
#: that keeps refusing, or a message that keeps failing, must not become a hot redelivery loop.
REQUEUE_HOLD_FIRST = 0.5
REQUEUE_HOLD_MAX = 30.0

# messages_processed_total statuses
SUCCESS = "success"
ERROR = "error"
EMPTY = "empty_response"
TERMINAL_CONSUMED = "terminal_consumed"
CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Disposition:
    """How the delivery ended, for the hooks.

    ``status`` None means requeued untouched; ``reason`` says why the message failed or could
    not be finished.
    """

    status: str | None
    reason: str | None = None


# Shared so that the common endings allocate nothing per message.
REQUEUED = Disposition(None)
SUCCEEDED = Disposition(SUCCESS)
EMPTY_RESPONSE = Disposition(EMPTY)
CONSUMED = Disposition(TERMINAL_CONSUMED)
RETRIED = Disposition(ERROR)
DROPPED_CANCELLED = Disposition(CANCELLED)


class Processor:
    def __init__(
        self,
        settings: SidecarSettings,
        transport: Transport,
        runtime: RuntimeClient,
        gate: RuntimeGate,
        hooks: Hooks,
        clock: Callable[[], float] = time.monotonic,
        cancelled: CancelledJobs | None = None,
        claim_check: ClaimCheck | None = None,
    ) -> None:
        self._settings = settings
        self._cancelled = cancelled if cancelled is not None else CancelledJobs()
        self._transport = transport
        self._runtime = runtime
        self._gate = gate
        self._hooks = hooks
        self._clock = clock
        self._terminal = settings.is_terminal
        self._failure_queue = (
            router.DEAD_LETTER_QUEUE if self._terminal else settings.error_end_queue
        )
        self._failure_kind = router.DEAD_LETTER if self._terminal else router.ERROR_END
        self._own_queues = frozenset(settings.own_queues)
        self._requeue_holds = Backoff(REQUEUE_HOLD_FIRST, cap=REQUEUE_HOLD_MAX)
        self._poison = PoisonGuard(settings.max_deliveries)
        self.claim_check = claim_check

    async def handle(self, delivery: IncomingMessage) -> None:
        """Process and settle one delivery; never raises except on cancellation."""
        ctx = MessageContext(delivery=delivery, body=delivery.body, started=self._clock())
        disposition = REQUEUED
        self._hooks.on_received(ctx)
        try:
            async with settling(delivery) as settlement:
                try:
                    poisoned = self._poison.check(delivery.body, delivery.deliveries)
                    if poisoned is not None:
                        disposition = await self._park(ctx, poisoned)
                    else:
                        disposition = await self._process(ctx, settlement)
                except Exception as exc:
                    hold = self._requeue_holds.next()
                    if isinstance(exc, TransportError):
                        disposition = Disposition(None, "publish_failed")
                        logger.error("publishing failed, message requeued in %.1f s: %s", hold, exc)
                    else:
                        disposition = Disposition(None, "internal_error")
                        logger.exception("unexpected error; message requeued in %.1f s", hold)
                    self._poison.remember(delivery.body, f"{disposition.reason}: {exc}")
                    await asyncio.sleep(hold)
                    settlement.requeue = True
                else:
                    self._requeue_holds.reset()
        except asyncio.CancelledError:
            if disposition.status is not None:
                disposition = Disposition(None, disposition.reason)
            raise
        finally:
            self._hooks.on_finished(ctx, disposition.status, disposition.reason)

    async def _process(self, ctx: MessageContext, settlement: Settlement) -> Disposition:
        # 1. Parse.
        try:
            message = parse_message(ctx.body)
        except MessageError as exc:
            return await self._fail_unparsable(ctx, None, str(exc))
        ctx.job_id = job_id_of(message)
        problem = message_problem(message, finished_allowed=self._terminal)
        if problem is not None and self._terminal and _is_error_end_message(message):
            # docs/reference/crew.md#handlers: an error-end message may carry the broken route
            # that made it fail; the error-end crew must still see it (a terminal actor never
            # routes anyway).
            problem = None
        if problem is not None:
            return await self._fail_unparsable(ctx, message, problem)
        ctx.message = message
        if ctx.job_id in self._cancelled:
            logger.info("job %s is cancelled: message dropped", ctx.job_id)
            return DROPPED_CANCELLED
        if not self._terminal:
            route = message["route"]
            current = route["current"]
            if route["steps"][current] != self._settings.queue_name:
                logger.warning(
                    "message for step %r (index %d) arrived on queue %r",
                    route["steps"][current],
                    current,
                    self._settings.queue_name,
                )
            # 2. Deadline.
            if deadline_passed(message):
                failure = Failure(
                    "deadline_exceeded",
                    f"job deadline {route['metadata']['deadline']} passed before "
                    f"{self._settings.queue_name} could process the message",
                    "DeadlineExceeded",
                )
                return await self._fail(ctx, failure, reason="deadline_exceeded")
        if REF_FIELD in message and not self._terminal:
            # Payload by reference: the runtime gets the real one. Terminal actors (the crew)
            # take the reference as it is: happy-end reports it, the gateway resolves it
            # (docs/reference/crew.md#handlers).
            unresolved = await self._resolve_payload(ctx, message)
            if unresolved is not None:
                return await self._fail(ctx, unresolved, reason=unresolved.code)
        # 3. Progress (received, processing) runs beside the runtime call.
        await self._hooks.before_runtime(ctx)
        # 4. Runtime call (pipelined: see RuntimeClient).
        async with self._runtime.slot():
            if not self._gate.is_open and not await self._gate.wait_open():
                # The runtime is gone or we are stopping, and this message's call has not
                # started: give it back untouched so that another replica can take it.
                settlement.requeue = True
                return REQUEUED
            with self._cancelled.in_runtime(ctx.job_id):
                response = await self._call_runtime(ctx, settlement)
        if ctx.job_id in self._cancelled:
            # Cancelled while in the runtime (the call was interrupted, or ended just then):
            # nothing of it goes on, not even to error-end.
            logger.info("job %s cancelled during its runtime call: message dropped", ctx.job_id)
            settlement.requeue = False
            return DROPPED_CANCELLED
        if response is None:
            return REQUEUED
        if isinstance(response, Failure):
            return await self._handle_failure(ctx, response)
        return await self._handle_success(ctx, response)

    async def _resolve_payload(self, ctx: MessageContext, message: Message) -> Failure | None:
        """Put the referenced payload in ``ctx.message``; the Failure when it cannot be had
        (docs/reference/message.md#payload-reference)."""
        if self.claim_check is None:
            return Failure(
                "payload_missing",
                "message carries a payload reference but ASYA_PAYLOAD_STORE_URL is not set",
                "PayloadMissing",
            )
        try:
            ctx.message = await self.claim_check.resolve(message)
        except InvalidReference as exc:
            return Failure("msg_parsing_error", str(exc), "InvalidPayloadReference")
        except PayloadMissing as exc:
            return Failure("payload_missing", str(exc), "PayloadMissing")
        ctx.runtime_body = encode_json(ctx.message)
        return None

    async def _call_runtime(
        self, ctx: MessageContext, settlement: Settlement
    ) -> list[Any] | Failure | None:
        """The runtime's outputs, a Failure, or None when the message was requeued."""
        started = self._clock()
        try:
            raw = await self._runtime.call(ctx.runtime_body or ctx.body)
        except RuntimeUnavailable as exc:
            logger.warning("runtime unreachable, message requeued and consuming paused: %s", exc)
            self._poison.remember(ctx.body, f"runtime unreachable: {exc}")
            self._gate.lose(unreachable=True)
            settlement.requeue = True
            return None
        except RuntimeTimeout:
            self._hooks.after_runtime(ctx, self._clock() - started, "timeout_error")
            self._gate.lose(TIMEOUT_RECOVERY_PAUSE)
            timeout = format_duration(self._settings.runtime_timeout)
            return Failure("timeout_error", f"Runtime timeout exceeded ({timeout})", "TimeoutError")
        except RuntimeCrashed as exc:
            self._hooks.after_runtime(ctx, self._clock() - started, "runtime_crashed")
            return Failure(
                "runtime_crashed", f"Runtime crashed: {exc}", "RuntimeCrashed", router.RECOVERABLE
            )
        elapsed = self._clock() - started
        try:
            items = decode_json(raw)
        except ValueError as exc:
            items = exc
        if not isinstance(items, list):
            self._hooks.after_runtime(ctx, elapsed, "runtime_error")
            return Failure(
                "runtime_error",
                f"invalid runtime response (expected a JSON array): {raw[:200]!r}",
                "InvalidResponse",
            )
        failure = router.error_in_response(items)
        self._hooks.after_runtime(ctx, elapsed, failure.code if failure else None)
        return failure if failure is not None else items

    async def _handle_success(self, ctx: MessageContext, outputs: list[Any]) -> Disposition:
        if self._terminal:
            # 6. A terminal actor routes nothing, whatever the runtime returned.
            return CONSUMED
        if not outputs:
            # 5. Empty response: the original message, unchanged, goes to happy-end.
            await self._hooks.before_publish(ctx, True)
            body = (
                ctx.body
                if ctx.trace is None
                else encode_json(router.traced(ctx.message, ctx.trace))
            )
            await self._send_raw(ctx, self._settings.happy_end_queue, body, router.HAPPY_END)
            return EMPTY_RESPONSE
        outputs = router.with_input_fields(outputs, ctx.message)  # the original runtime: no job_id
        problem = next(filter(None, map(_output_problem, outputs)), None)
        if problem is not None:
            failure = Failure(
                "processing_error",
                f"runtime returned an unusable output: {problem}",
                "InvalidOutput",
            )
            return await self._fail(ctx, failure, reason="invalid_output")
        # 8. Route every output on its own (fan-out), completed reported first.
        assert ctx.message is not None
        publishes = router.route_outputs(
            outputs, self._settings.happy_end_queue, ctx.message.get("branch")
        )
        ctx.outputs = len(publishes)
        await self._hooks.before_publish(ctx, True)
        undelivered = await self._publish_outputs(ctx, publishes)
        for publish, error in undelivered:
            logger.error("output of job %s could not be sent: %s", ctx.job_id, error)
            output = publish.message
            if isinstance(error, MessageTooLargeError):
                output = {**output, "payload": None}  # what did not fit cannot go to error-end
            await self._send_failure(ctx, _undeliverable(error), output=output)
        if not undelivered:
            return SUCCEEDED
        too_large = isinstance(undelivered[0][1], MessageTooLargeError)
        return Disposition(ERROR, "message_too_large" if too_large else "unroutable")

    async def _publish_outputs(
        self, ctx: MessageContext, publishes: list[Publish]
    ) -> list[tuple[Publish, Undeliverable]]:
        """Publish every output (concurrently when fanning out); those no broker will take."""
        if len(publishes) == 1:  # the common case, without gather's extra task
            try:
                await self._send(ctx, publishes[0])
            except (UnroutableError, MessageTooLargeError) as exc:
                return [(publishes[0], exc)]
            return []
        results = await asyncio.gather(
            *(self._send(ctx, publish) for publish in publishes), return_exceptions=True
        )
        undelivered: list[tuple[Publish, Undeliverable]] = []
        for publish, result in zip(publishes, results, strict=True):
            if isinstance(result, (UnroutableError, MessageTooLargeError)):
                undelivered.append((publish, result))
            elif isinstance(result, BaseException):
                raise result
        return undelivered

    async def _handle_failure(self, ctx: MessageContext, failure: Failure) -> Disposition:
        # 7. Recoverable (or any, in a terminal actor) → retry; otherwise error-end.
        assert ctx.message is not None
        attempt = attempt_of(ctx.message)
        if router.should_retry(
            failure, attempt, self._settings.max_retries, terminal=self._terminal
        ):
            delay = router.retry_delay(attempt, self._settings.retry_backoff, failure.retry_after)
            logger.info(
                "%s on job %s: retry %d of %d in %.1f s",
                failure.code,
                ctx.job_id,
                attempt + 1,
                self._settings.max_retries,
                delay,
            )
            await self._hooks.before_publish(ctx, False)
            retried = router.retry_message(ctx.message)
            await self._send(
                ctx, Publish(self._settings.queue_name, retried, router.RETRY), delay=delay
            )
            return RETRIED
        reason = "retries_exhausted" if attempt else failure.code
        return await self._fail(ctx, failure, reason=reason)

    async def _fail(self, ctx: MessageContext, failure: Failure, *, reason: str) -> Disposition:
        logger.info(
            "job %s failed at %s: %s: %s",
            ctx.job_id,
            self._settings.queue_name,
            failure.code,
            failure.message,
        )
        await self._hooks.before_publish(ctx, False)
        await self._send_failure(ctx, failure)
        return Disposition(ERROR, reason)

    async def _park(self, ctx: MessageContext, failure: Failure) -> Disposition:
        """A poison message: to error-end without calling the runtime (poison.py)."""
        try:
            message: dict[str, Any] | None = parse_message(ctx.body)
        except MessageError:
            message = None
        if message is not None:
            ctx.job_id = job_id_of(message)
        logger.error(
            "job %s: poison message on %s: %s",
            ctx.job_id,
            self._settings.queue_name,
            failure.message,
        )
        error_end = router.error_end_message(
            failure, failed_step=self._settings.queue_name, original_body=ctx.body, message=message
        )
        await self._send(ctx, Publish(self._failure_queue, error_end, self._failure_kind))
        return Disposition(ERROR, failure.code)

    async def _fail_unparsable(
        self, ctx: MessageContext, message: dict[str, Any] | None, problem: str
    ) -> Disposition:
        logger.warning("unusable message on %s: %s", self._settings.queue_name, problem)
        failure = Failure("msg_parsing_error", problem, "MessageParsingError")
        await self._send(
            ctx,
            Publish(
                self._failure_queue,
                router.error_end_message(
                    failure,
                    failed_step=self._settings.queue_name,
                    original_body=ctx.body,
                    message=message,
                ),
                self._failure_kind,
            ),
        )
        return Disposition(ERROR, "msg_parsing_error")

    async def _send_failure(
        self, ctx: MessageContext, failure: Failure, *, output: dict[str, Any] | None = None
    ) -> None:
        """Error-end (dead-letter in a terminal actor) in the shape of
        docs/reference/message.md#error-end-message."""
        message = router.error_end_message(
            failure,
            failed_step=self._settings.queue_name,
            original_body=ctx.body,
            message=ctx.message,
            output=output,
        )
        try:
            await self._send(ctx, Publish(self._failure_queue, message, self._failure_kind))
        except MessageTooLargeError:
            slim = router.without_bulk(message)
            await self._send(ctx, Publish(self._failure_queue, slim, self._failure_kind))

    async def _send(self, ctx: MessageContext, publish: Publish, *, delay: float = 0.0) -> None:
        message = publish.message
        if ctx.trace is not None and publish.kind != router.RETRY:
            message = router.traced(message, ctx.trace)
        await self._send_raw(ctx, publish.queue, encode_json(message), publish.kind, delay)

    async def _send_raw(
        self, ctx: MessageContext, queue: str, body: bytes, kind: str, delay: float = 0.0
    ) -> None:
        if len(queue.encode()) > router.MAX_QUEUE_NAME_BYTES:
            raise UnroutableError(queue)  # no broker can have such a queue: do not even try
        started = self._clock()
        if self.claim_check is None:
            await self._publish(queue, body, delay)
        else:
            body = await self.claim_check.publish(body, partial(self._publish, queue, delay=delay))
        self._hooks.on_sent(ctx, queue, kind, len(body), self._clock() - started)

    async def _publish(self, queue: str, body: bytes, delay: float) -> None:
        try:
            await self._transport.publish(queue, body, delay=delay)
        except UnroutableError:
            if queue not in self._own_queues:
                raise
            # Declared at start-up and deleted since (by hand, or a broker that lost it):
            # declare it again rather than requeue the message forever.
            logger.warning("queue %r has disappeared; declaring it again", queue)
            await self._transport.declare_queue(queue)
            await self._transport.publish(queue, body, delay=delay)


Undeliverable = UnroutableError | MessageTooLargeError


def _undeliverable(error: Undeliverable) -> Failure:
    if isinstance(error, MessageTooLargeError):
        return Failure(
            "message_too_large",
            f"{error}: set ASYA_PAYLOAD_STORE_URL so that large payloads travel by reference",
            "MessageTooLargeError",
        )
    return Failure("unroutable_error", str(error), "UnroutableError")


def _is_error_end_message(message: dict[str, Any]) -> bool:
    return isinstance(message.get("error"), str) and "original_message" in message


def _output_problem(output: Any) -> str | None:
    """Why an output cannot be routed: the same rules as an incoming message's route."""
    if not isinstance(output, dict):
        return f"expected an object, got {type(output).__name__}"
    return message_problem(output)
