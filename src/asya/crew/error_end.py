"""error-end: the terminal actor for messages that failed
(docs/reference/message.md#error-end-message, docs/reference/crew.md).

Run with ``ASYA_HANDLER=asya.crew.error_end.handle`` in message mode, validation off (a failed
message may carry a broken route), behind a terminal sidecar. Persists the message under the
errors prefix when S3 is configured, then reports ``{"status": "failed", "error": "<code>:
<message>", "error_details": {...}}`` to the gateway (docs/reference/crew.md#handlers).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from asya.crew.base import CrewMember, Message, job_id_of

logger = logging.getLogger(__name__)


def describe_error(message: Message) -> str:
    """``"<code>: <human message>"`` from an error-end message, tolerant of missing parts."""
    code = message.get("error") or "unknown_error"
    details = message.get("error_details")
    text = details.get("message") if isinstance(details, dict) else None
    return f"{code}: {text}" if text else str(code)


def failed_step(message: Message) -> str:
    step = message.get("failed_step")
    if step:
        return str(step)
    route = message.get("route")
    steps = route.get("steps") if isinstance(route, dict) else None
    current = route.get("current") if isinstance(route, dict) else None
    if isinstance(steps, list) and isinstance(current, int) and 0 <= current < len(steps):
        return str(steps[current])
    return "unknown"


def error_details_of(message: Message) -> dict[str, Any]:
    """The ``error_details`` of the final report: the failure's cause as error-end received it.

    Every key is present; a part the message lacks is null (the gateway stores it as is).
    """
    details = message.get("error_details")
    details = details if isinstance(details, dict) else {}
    branch = message.get("branch")
    attempts = message.get("attempts")
    deliveries = details.get("deliveries")  # poison_message: deliveries that never finished
    poison = (
        {"deliveries": deliveries, "last_error": _text_or_none(details.get("last_error"))}
        if isinstance(deliveries, int) and not isinstance(deliveries, bool)
        else {}
    )
    return {
        "code": _text_or_none(message.get("error")),
        "message": _text_or_none(details.get("message")),
        "type": _text_or_none(details.get("type")),
        "traceback": _text_or_none(details.get("traceback")),
        "failed_step": _text_or_none(message.get("failed_step")),
        "branch": branch if isinstance(branch, list) and branch else None,
        "attempts": attempts
        if isinstance(attempts, int) and not isinstance(attempts, bool)
        else None,
        "severity": _text_or_none(details.get("severity")),
        **poison,
    }


def _text_or_none(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


class ErrorEnd(CrewMember):
    role = "error-end"

    def handle(self, message: Message) -> list[Any]:
        if not isinstance(message, dict):
            logger.warning("error-end: dropping a message that is not a JSON object: %r", message)
            return []
        job_id = job_id_of(message)
        error = describe_error(message)
        if job_id is None:
            logger.warning(
                "error-end: dropping a failed message without job_id (step %s, %s)",
                failed_step(message),
                error,
            )
            return []
        logger.info("error-end: job %s failed at %s: %s", job_id, failed_step(message), error)
        prefix = self.settings.s3.errors_prefix if self.settings.s3 else ""
        details = error_details_of(message)
        body: dict[str, Any] = {"status": "failed", "error": error, "error_details": details}
        if details["branch"] is not None:
            body["branch"] = details["branch"]
        self.finish(job_id, prefix=prefix, step=failed_step(message), message=message, body=body)
        return []


@functools.cache
def _worker_instance() -> ErrorEnd:
    return ErrorEnd()


def handle(message: Message) -> list[Any]:
    """The runtime's entry point: one :class:`ErrorEnd` per worker process."""
    return _worker_instance().handle(message)
