"""One INFO line per finished message (docs/reference/sidecar.md#logs).

The line names the job, the step, how the message ended and how long it took; the same values
ride on the record as ``extra`` fields, so ``ASYA_LOG_FORMAT=json`` gives them as JSON keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from asya.message import branch_text
from asya.sidecar.hooks import Hook, MessageContext

logger = logging.getLogger("asya.sidecar.messages")

#: ``outcome`` of a message that went back to the queue untouched.
REQUEUED = "requeued"
#: ``outcome`` of a message republished for another attempt.
RETRIED = "retried"


def outcome_of(status: str | None, reason: str | None) -> str:
    """How a delivery ended, in one word: ``success``, ``empty_response``,
    ``terminal_consumed``, ``retried``, ``requeued``, or the failure's reason."""
    if reason is not None:
        return reason
    if status is None:
        return REQUEUED
    if status == "error":  # an error without a reason was published for another try
        return RETRIED
    return status


def message_fields(ctx: MessageContext) -> dict[str, Any]:
    """Job id, step, step index, attempt and branch of the delivery, as far as they are known."""
    fields: dict[str, Any] = {"job_id": ctx.job_id}
    message = ctx.message
    if message is None:
        return fields
    route = message.get("route")
    if not isinstance(route, dict):  # an error-end message may carry a broken route
        return fields
    try:
        step, index, _ = ctx.step_info
    except (KeyError, TypeError, IndexError):
        return fields
    if step:  # a terminal actor's message has finished its route: no step left
        fields["step"] = step
    fields["step_index"] = index
    metadata = route.get("metadata")
    attempt = metadata.get("attempt") if isinstance(metadata, dict) else None
    fields["attempt"] = attempt if isinstance(attempt, int) else 0
    branch = branch_text(message.get("branch"))
    if branch is not None:
        fields["branch"] = branch
    return fields


class MessageLogHook(Hook):
    """Logs ``finished job … at step …: outcome in … ms`` for every settled delivery."""

    def __init__(self, queue: str, clock: Callable[[], float]) -> None:
        self._queue = queue
        self._clock = clock

    def on_finished(self, ctx: MessageContext, status: str | None, reason: str | None) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        fields = message_fields(ctx)
        fields["queue"] = self._queue
        fields["outcome"] = outcome_of(status, reason)
        fields["duration_ms"] = round((self._clock() - ctx.started) * 1000, 3)
        if "step" in fields:
            where = f"step {fields['step']} [{fields['step_index']}]"
        else:
            where = "route done" if "step_index" in fields else "unparsed"
        branch = f" branch {fields['branch']}" if "branch" in fields else ""
        logger.info(
            "job %s %s%s: %s in %.1f ms",
            fields["job_id"] or "-",
            where,
            branch,
            fields["outcome"],
            fields["duration_ms"],
            extra=fields,
        )
