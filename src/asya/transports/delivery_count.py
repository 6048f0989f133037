"""Counting the deliveries of an AMQP message, on queues that count and on queues that do not.

Quorum queues count for us: a message returned to one (its consumer died, or it was requeued)
comes back with ``x-delivery-count`` = how many times it came back. Classic queues keep only a
``redelivered`` flag, and a deployment's queues cannot change type under it, so on those the
consumer keeps the count in the message itself: a delivery flagged ``redelivered`` is not
handed out; its copy is published again with :data:`COUNT_HEADER` raised by one (persistent,
confirmed) and only then is the original acked. The copy arrives as a first delivery whose
header says which delivery it is (docs/reference/transports.md#delivery-count).

Both counts add up, so a copy published on a quorum queue (by an older consumer, or a broker
that did not count a return) keeps counting from where it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Set by Asya on a republished copy: the number of the copy's first delivery (2, 3, ...).
COUNT_HEADER = "x-asya-deliveries"
#: Set by RabbitMQ on a quorum (or stream) queue's returned message: returns so far.
BROKER_COUNT_HEADER = "x-delivery-count"


def delivery_number(headers: Mapping[str, Any] | None, *, redelivered: bool) -> int | None:
    """Which delivery of its message this one is (1 the first time), or None when the queue
    keeps no count and this is a redelivery: the caller must republish it (:func:`recounted`)."""
    if not headers:  # the common case, on every delivery: no count kept yet
        return None if redelivered else 1
    first = _count(headers.get(COUNT_HEADER), default=1, minimum=1)
    if BROKER_COUNT_HEADER in headers:
        return first + _count(headers[BROKER_COUNT_HEADER], default=0, minimum=0)
    if redelivered:
        return None
    return first


def recounted(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """The headers for the copy of a redelivered message: its count raised by one, the rest
    kept (the broker's own count is dropped: the copy is a new message to the broker)."""
    headers = dict(headers or {})
    count = _count(headers.get(COUNT_HEADER), default=1, minimum=1)
    headers.pop(BROKER_COUNT_HEADER, None)
    headers[COUNT_HEADER] = count + 1
    return headers


def _count(value: Any, *, default: int, minimum: int) -> int:
    """A header value as a count; anything not a whole number (a foreign header) is the default."""
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return max(value, minimum)
