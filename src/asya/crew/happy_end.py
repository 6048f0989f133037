"""happy-end: the terminal actor for messages that finished their route (docs/reference/crew.md).

Run with ``ASYA_HANDLER=asya.crew.happy_end.handle`` in message mode, validation off, behind a
terminal sidecar. Persists the message to S3 when configured, then reports
``{"status": "succeeded", "result": <payload>, "metadata": {"s3_uri"?}}`` to the gateway; a
payload that travels by reference is reported as its reference, ``result_ref``
(docs/reference/crew.md#handlers).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from asya.crew.base import CrewMember, Message, job_id_of
from asya.payloads import REF_FIELD

logger = logging.getLogger(__name__)


def last_step(message: Message) -> str:
    """The step that produced the result.

    A finished route has ``current == len(steps)`` (its last step); a step that returned nothing
    sends the original message here with ``current`` still pointing at itself.
    """
    route = message.get("route")
    steps = route.get("steps") if isinstance(route, dict) else None
    if not isinstance(steps, list) or not steps:
        return "unknown"
    current = route.get("current") if isinstance(route, dict) else None
    if isinstance(current, int) and not isinstance(current, bool) and 0 <= current < len(steps):
        return str(steps[current])
    return str(steps[-1])


class HappyEnd(CrewMember):
    role = "happy-end"

    def handle(self, message: Message) -> list[Any]:
        job_id = job_id_of(message)
        if job_id is None:
            logger.warning("happy-end: dropping a message without job_id (nothing to report)")
            return []
        prefix = self.settings.s3.results_prefix if self.settings.s3 else ""
        body: dict[str, Any] = {"status": "succeeded", "result": message.get("payload")}
        if REF_FIELD in message:  # the payload is in the store: the gateway reads it there
            body["result_ref"] = message[REF_FIELD]
        branch = message.get("branch")
        if isinstance(branch, list) and branch:
            body["branch"] = branch
        self.finish(job_id, prefix=prefix, step=last_step(message), message=message, body=body)
        return []


@functools.cache
def _worker_instance() -> HappyEnd:
    return HappyEnd()


def handle(message: Message) -> list[Any]:
    """The runtime's entry point: one :class:`HappyEnd` per worker process."""
    return _worker_instance().handle(message)
