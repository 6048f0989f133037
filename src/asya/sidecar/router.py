"""Pure routing decisions: where each output goes, what an error becomes, when to retry.

Nothing here does I/O, so every rule of docs/reference/sidecar.md#per-message
(docs/reference/message.md#error-end-message, retries) can be unit-tested with plain dicts. The
processor turns these decisions into publishes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from asya.message import Message, attempt_of, job_id_of

MAX_RETRY_DELAY = 300.0
MAX_QUEUE_NAME_BYTES = 255  # AMQP short strings: longer names cannot exist
DEAD_LETTER_QUEUE = "asya-dead-letter"

# Message types of the messages_sent_total metric.
ROUTING = "routing"
HAPPY_END = "happy_end"
ERROR_END = "error_end"
RETRY = "retry"
DEAD_LETTER = "dead_letter"

FATAL = "fatal"
RECOVERABLE = "recoverable"


@dataclass(frozen=True)
class Publish:
    """One message to publish: destination queue, the message, its metric type."""

    queue: str
    message: Message
    kind: str


@dataclass(frozen=True)
class Failure:
    """An error about one message: the code (``error``) and ``error_details``."""

    code: str
    message: str
    type: str
    severity: str = FATAL
    traceback: str = ""
    retry_after: float | None = None
    extra: Mapping[str, Any] | None = None  # more error_details fields, for some codes

    @property
    def recoverable(self) -> bool:
        return self.severity == RECOVERABLE

    def details(self) -> dict[str, Any]:
        details: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "traceback": self.traceback,
            "severity": self.severity,
        }
        if self.retry_after is not None:
            details["retry_after"] = self.retry_after
        if self.extra:
            details.update(self.extra)
        return details


def failure_from_response(item: Mapping[str, Any]) -> Failure:
    """Read the runtime's error object ``{"error": code, "details": {...}}``."""
    details = item.get("details")
    if not isinstance(details, Mapping):
        details = {}
    retry_after = details.get("retry_after")
    severity = details.get("severity")
    return Failure(
        code=str(item.get("error") or "processing_error"),
        message=str(details.get("message") or item.get("message") or ""),
        type=str(details.get("type") or ""),
        severity=RECOVERABLE if severity == RECOVERABLE else FATAL,
        traceback=str(details.get("traceback") or ""),
        retry_after=float(retry_after)
        if isinstance(retry_after, int | float) and not isinstance(retry_after, bool)
        else None,
    )


def error_in_response(items: Sequence[Any]) -> Failure | None:
    """The runtime's error, when the response is an error response (one ``error`` object)."""
    if len(items) == 1 and isinstance(items[0], Mapping) and "error" in items[0]:
        return failure_from_response(items[0])
    return None


def with_input_fields(outputs: Sequence[Any], message: Message | None) -> list[Any]:
    """Each output object completed with the input's top-level fields it lacks.

    Our runtime already answers so (docs/reference/runtime-protocol.md#output-fields: in payload
    mode the input with ``payload`` replaced, in message mode the input's fields an output left
    out). The original runtime answers ``{payload, route}`` only, and the original sidecar
    copied ``job_id`` over itself: without this, a job the gateway tracks would never finish.
    What the output has wins; an output that lacks nothing (our runtime's) is passed as it is,
    and anything but an object passes unchanged (and is refused as unroutable).
    """
    if message is None:
        return list(outputs)
    wanted = message.keys()
    return [
        {**message, **output}
        if isinstance(output, dict) and not wanted <= output.keys()
        else output
        for output in outputs
    ]


def route_outputs(
    outputs: Sequence[Message], happy_end: str, input_branch: Any = None
) -> list[Publish]:
    """Advance each output's route by one step and pick its queue (fan-out: each on its own).

    The output's own route is used (a ``message``-mode handler may have replaced the steps
    ahead). ``route.metadata.attempt`` counts retries of *this* step, so it is dropped.
    ``branch`` (docs/reference/message.md#branch) is set from ``input_branch``, the input
    message's: one output keeps it, output ``i`` of ``n > 1`` gains ``{"index": i, "count": n}``.
    """
    publishes = []
    count = len(outputs)
    for index, output in enumerate(outputs):
        message = dict(output)
        if count > 1:
            message["branch"] = [*(input_branch or ()), {"index": index, "count": count}]
        elif input_branch:
            message["branch"] = input_branch
        else:
            message.pop("branch", None)
        route = dict(message["route"])
        metadata = route.get("metadata")
        if isinstance(metadata, dict) and "attempt" in metadata:
            route["metadata"] = {k: v for k, v in metadata.items() if k != "attempt"}
        current = int(route["current"]) + 1
        route["current"] = current
        message["route"] = route
        steps = route["steps"]
        if current < len(steps):
            publishes.append(Publish(steps[current], message, ROUTING))
        else:
            publishes.append(Publish(happy_end, message, HAPPY_END))
    return publishes


def retry_delay(attempt: int, backoff: float, retry_after: float | None = None) -> float:
    """Delay before retry number ``attempt + 1``: backoff doubling per attempt, capped at 5 min,
    replaced by the runtime's ``retry_after`` when that is larger."""
    delay = MAX_RETRY_DELAY if attempt >= 32 else min(backoff * (2**attempt), MAX_RETRY_DELAY)
    if retry_after is not None and retry_after > delay:
        return retry_after
    return delay


def should_retry(failure: Failure, attempt: int, max_retries: int, *, terminal: bool) -> bool:
    """Recoverable errors (any error in a terminal actor) get ``max_retries`` more attempts."""
    return (terminal or failure.recoverable) and attempt < max_retries


def retry_message(message: Message) -> Message:
    """The message republished for another try: ``route.metadata.attempt`` + 1."""
    retried = dict(message)
    original = retried.get("route")
    route = dict(original) if isinstance(original, dict) else {}  # terminal: may be broken
    metadata = route.get("metadata")
    metadata = dict(metadata) if isinstance(metadata, dict) else {}
    metadata["attempt"] = attempt_of(message) + 1
    route["metadata"] = metadata
    retried["route"] = route
    return retried


def error_end_message(
    failure: Failure,
    *,
    failed_step: str,
    original_body: bytes,
    message: Message | None,
    output: Message | None = None,
) -> Message:
    """The error-end message (docs/reference/message.md#error-end-message).

    ``route``/``payload`` come from the failed message (or, for an output that could not be
    delivered, from that ``output``); ``original_message`` is the input exactly as received.
    """
    source = output if output is not None else message
    route: Any = None
    payload: Any = None
    branch: Any = None
    if source is not None:
        route = copy.deepcopy(source.get("route"))
        payload = source.get("payload")
        branch = source.get("branch")
    error_end: Message = {
        "job_id": job_id_of(message) if message is not None else None,
        "error": failure.code,
        "error_details": failure.details(),
        "original_message": original_body.decode("utf-8", errors="replace"),
        "route": route,
        "payload": payload,
        "failed_step": failed_step,
        "attempts": (attempt_of(message) if message is not None else 0) + 1,
    }
    if branch:
        error_end["branch"] = branch
    trace = message.get("trace") if message is not None else None
    if trace is not None:  # the job's trace goes on to the error-end crew
        error_end["trace"] = trace
    return error_end


#: How much of ``original_message`` an error-end message keeps when it is too large to send.
ORIGINAL_MESSAGE_KEPT = 4096


def without_bulk(error_end: Message) -> Message:
    """An error-end message cut to fit a broker's size limit: no ``payload``, and only the start
    of ``original_message`` (docs/reference/message.md#error-end-message)."""
    original = str(error_end.get("original_message") or "")
    if len(original) > ORIGINAL_MESSAGE_KEPT:
        original = f"{original[:ORIGINAL_MESSAGE_KEPT]}… ({len(original)} characters in all)"
    return {**error_end, "payload": None, "original_message": original}


def traced(message: Message | None, trace: dict[str, str]) -> Message:
    """``message`` with its ``trace`` (docs/reference/message.md#trace) replaced."""
    return {**(message or {}), "trace": trace}
