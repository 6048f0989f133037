"""Poison messages: a message that keeps killing (or stalling) its consumer is parked.

The transport counts every delivery of a message across consumer crashes
(``IncomingMessage.deliveries``). Once a message arrives for more than ``ASYA_MAX_DELIVERIES``
times, the earlier deliveries all ended without being settled — the sidecar died, or gave the
message back — so it goes to error-end as ``poison_message`` without calling the runtime again
(docs/reference/sidecar.md#poison-messages).

A sidecar killed by the message leaves no trace of why; an error the sidecar saw itself before
giving a message back (a publish that failed, the runtime out of reach) is remembered here, in
memory and for a bounded number of messages, and named as the last error if that sidecar later
parks the message.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

from asya.sidecar.router import Failure

POISON_MESSAGE = "poison_message"
#: How many messages' last errors are remembered (the oldest is forgotten first).
REMEMBERED_ERRORS = 1024


class PoisonGuard:
    """Decides whether a delivery is parked, and keeps the last error seen per message."""

    def __init__(self, max_deliveries: int, remembered: int = REMEMBERED_ERRORS) -> None:
        self.max_deliveries = max_deliveries
        self._remembered = remembered
        self._last_errors: OrderedDict[bytes, str] = OrderedDict()

    def check(self, body: bytes, deliveries: int | None) -> Failure | None:
        """The ``poison_message`` failure when this delivery is past the limit, else None."""
        if deliveries is None or deliveries <= self.max_deliveries:
            return None
        last_error = self._last_errors.pop(_key(body), None)
        return poison_failure(deliveries - 1, self.max_deliveries, last_error)

    def remember(self, body: bytes, error: str) -> None:
        """The sidecar gives ``body`` back after ``error``: name it if the message is parked."""
        key = _key(body)
        self._last_errors[key] = error
        self._last_errors.move_to_end(key)
        while len(self._last_errors) > self._remembered:
            self._last_errors.popitem(last=False)


def poison_failure(unfinished: int, limit: int, last_error: str | None) -> Failure:
    """The failure of a message parked after ``unfinished`` deliveries that never ended."""
    text = (
        f"message parked after {unfinished} deliveries that never finished "
        f"(ASYA_MAX_DELIVERIES={limit}): each time its consumer died or gave it back; "
        "the runtime was not called again"
    )
    if last_error:
        text += f"; last error: {last_error}"
    extra = {"deliveries": unfinished, "last_error": last_error}
    return Failure(POISON_MESSAGE, text, "PoisonMessage", extra=extra)


def _key(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=16).digest()
