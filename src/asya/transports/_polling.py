"""The pull-based subscription shared by the memory and SQLite transports.

Neither backend pushes messages, so both consume the same way: take up to ``prefetch`` minus
the deliveries still unsettled, hand them out one by one, and otherwise wait until something
changes (a local publish, a settled delivery, a cancel) or a backend-specific timeout passes.
Only the two primitives — take a batch, give a delivery back — differ per backend.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

from asya.transports.base import IncomingMessage, Subscription
from asya.transports.delivery import Delivery


class PollingSubscription(Subscription):
    """Hands out deliveries taken by ``take`` while fewer than ``prefetch`` are unsettled.

    ``__anext__`` may be cancelled (``asyncio.wait_for``) at any point without losing a
    message: a batch claimed while the caller gave up is handed out by the next call.
    """

    def __init__(self, queue: str, prefetch: int) -> None:
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, got {prefetch}")
        self.queue = queue
        self.prefetch = prefetch
        self.unsettled: set[Delivery] = set()
        self.cancelled = False
        self._ready: deque[Delivery] = deque()  # claimed, not yet handed out
        self._claim: asyncio.Future[list[Delivery]] | None = None
        self._wake = asyncio.Event()
        self._idle_rounds = 0
        self._pending_release: asyncio.Future[None] | None = None

    # -- backend hooks -----------------------------------------------------------------------

    @abc.abstractmethod
    async def take(self, limit: int) -> list[Delivery]:
        """Claim up to ``limit`` ready messages, oldest first."""

    @abc.abstractmethod
    async def release(self, deliveries: list[Delivery]) -> None:
        """Return unsettled deliveries to the queue (cancel, close)."""

    @abc.abstractmethod
    def idle_timeout(self, idle_rounds: int) -> float | None:
        """How long to wait for a wake-up after ``idle_rounds`` empty takes (None: forever)."""

    # -- protocol ----------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """Cancelled with nothing left to settle: the transport can forget it."""
        return self.cancelled and not self.unsettled

    def wake(self) -> None:
        """Something changed (publish, settle, cancel): look at the queue again."""
        self._wake.set()

    def __aiter__(self) -> AsyncIterator[IncomingMessage]:
        return self

    async def __anext__(self) -> IncomingMessage:
        while True:
            if self.cancelled:
                raise StopAsyncIteration
            if self._ready:
                return self._ready.popleft()
            self._wake.clear()
            room = self.prefetch - len(self.unsettled)
            if room > 0:
                if self._claim is None:
                    self._claim = asyncio.ensure_future(self.take(room))
                    self._claim.add_done_callback(self._adopt)
                # shielded: if our caller gives up, _adopt still keeps what was claimed
                await asyncio.shield(self._claim)
                if self._ready or self.cancelled:
                    self._idle_rounds = 0
                    continue
                timeout = self.idle_timeout(self._idle_rounds)
                self._idle_rounds += 1
            else:
                timeout = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _adopt(self, claim: asyncio.Future[list[Delivery]]) -> None:
        self._claim = None
        if claim.cancelled() or claim.exception() is not None:
            return
        for delivery in claim.result():
            delivery.on_settled = self._settled
            self.unsettled.add(delivery)
            self._ready.append(delivery)
        if self.cancelled and self._ready:
            self._pending_release = asyncio.ensure_future(self._give_back_ready())

    def _settled(self, delivery: Delivery) -> None:
        self.unsettled.discard(delivery)
        self.wake()

    async def _give_back_ready(self) -> None:
        ready = list(self._ready)
        self._ready.clear()
        await self.give_back(ready)

    async def give_back(self, deliveries: list[Delivery]) -> None:
        """Mark ``deliveries`` void and return the unsettled ones to the queue."""
        pending = [d for d in deliveries if not d.settled and not d.void]
        for delivery in pending:
            delivery.void = True
            self.unsettled.discard(delivery)
        if pending:
            await self.release(pending)

    async def cancel(self) -> None:
        """Stop handing out deliveries; claimed ones not yet handed out go back at once."""
        self.cancelled = True
        self.wake()
        if self._claim is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._claim)
        await self._give_back_ready()

    async def shutdown(self) -> None:
        """Cancel and give back every unsettled delivery (the transport is closing)."""
        await self.cancel()
        await self.give_back(list(self.unsettled))
