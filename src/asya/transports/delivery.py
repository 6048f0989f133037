"""The settle-once delivery that every transport hands out.

Each backend subclasses ``Delivery`` and implements ``_settle``; the base makes a second ack or
nack a no-op and refuses to settle a delivery its transport already gave back (closed, lease
expired), so a consumer cannot settle a message that another consumer may now hold.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

from asya.errors import TransportError
from asya.transports.base import IncomingMessage


class Delivery(IncomingMessage):
    """A delivery settled at most once; settling a delivery its transport gave back fails."""

    def __init__(
        self, queue: str, body: bytes, *, redelivered: bool, deliveries: int | None = None
    ) -> None:
        self.queue = queue
        self.body = body
        self.redelivered = redelivered
        self.deliveries = deliveries
        self.settled = False
        self.void = False
        self.on_settled: Callable[[Delivery], None] | None = None

    async def ack(self) -> None:
        if self._begin_settle():
            await self._finish_settle(ack=True, requeue=False)

    async def nack(self, *, requeue: bool = True) -> None:
        if self._begin_settle():
            await self._finish_settle(ack=False, requeue=requeue)

    def _begin_settle(self) -> bool:
        if self.void:
            raise TransportError(
                f"delivery from {self.queue!r} is no longer held: its transport was closed or "
                "its lease expired, so it returns to the queue"
            )
        if self.settled:
            return False
        self.settled = True
        return True

    async def _finish_settle(self, *, ack: bool, requeue: bool) -> None:
        try:
            await self._settle(ack=ack, requeue=requeue)
        finally:
            if self.on_settled is not None:
                self.on_settled(self)

    @abc.abstractmethod
    async def _settle(self, *, ack: bool, requeue: bool) -> None:
        """Apply the outcome in the backend."""
