"""The buffered subscription shared by the push transports (RabbitMQ, py-amqp, NATS).

The broker pushes deliveries whenever it likes; until someone calls ``serve`` they wait in a
buffer that iteration reads, and once ``serve`` runs each new one goes straight to its handler.
A ``None`` in the buffer marks the end, so every waiting reader stops. Each transport keeps its
own consuming, settling, recounting and reconnecting; it hands accepted deliveries to ``_hold``
(or ``_dispatch``) and calls ``_end`` when the subscription is over.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

from asya.errors import TransportError
from asya.transports.base import IncomingMessage, Subscription, run_in_background
from asya.transports.delivery import Delivery

D = TypeVar("D", bound=Delivery)
Handler = Callable[[IncomingMessage], Awaitable[None]]


class BufferedSubscription(Subscription, Generic[D]):
    """Buffers pushed deliveries for iteration, or hands them to the handler ``serve`` got."""

    def __init__(self) -> None:
        self._buffer: asyncio.Queue[D | None] = asyncio.Queue()
        self._handler: Handler | None = None
        self._unsettled: set[D] = set()
        self._cancelled = False
        self._ended = asyncio.Event()
        self._error: TransportError | None = None

    # -- transport hooks ---------------------------------------------------------------------

    @abc.abstractmethod
    def _settled(self, delivery: Delivery) -> None:
        """A held delivery was acked or nacked."""

    def _usable(self, delivery: D) -> bool:
        """Whether a buffered delivery can still be settled (its channel or link is alive)."""
        return True

    # -- delivering --------------------------------------------------------------------------

    def _hold(self, delivery: D) -> Handler | None:
        """Keep ``delivery`` until it is settled; buffer it while nobody serves, otherwise
        return the handler that must run it (the caller picks the task it runs in)."""
        delivery.on_settled = self._settled
        self._unsettled.add(delivery)
        handler = self._handler
        if handler is None:
            self._buffer.put_nowait(delivery)
        return handler

    def _dispatch(self, delivery: D) -> None:
        """``_hold``, running the handler in a task of its own."""
        handler = self._hold(delivery)
        if handler is not None:
            run_in_background(handler(delivery))

    def _end(self, error: TransportError | None = None) -> None:
        """No more deliveries: stop readers and ``serve`` (with the first error, if any)."""
        if self._error is None:
            self._error = error
        self._cancelled = True
        self._buffer.put_nowait(None)
        self._ended.set()

    async def _give_back_buffered(self) -> None:
        """Nack (requeue) every delivery still in the buffer; nobody has seen them."""
        while not self._buffer.empty():
            pending = self._buffer.get_nowait()
            if pending is not None:
                self._unsettled.discard(pending)
                pending.on_settled = None  # forgotten here already: no _settled bookkeeping
                with contextlib.suppress(TransportError):
                    await pending.nack(requeue=True)

    # -- protocol ----------------------------------------------------------------------------

    async def serve(self, handler: Handler) -> None:
        self._handler = handler
        while not self._buffer.empty():  # delivered before serve() was called
            delivery = self._buffer.get_nowait()
            if delivery is None:
                break
            run_in_background(handler(delivery))
        await self._ended.wait()
        if self._error is not None:
            raise self._error

    def __aiter__(self) -> AsyncIterator[IncomingMessage]:
        return self

    async def __anext__(self) -> IncomingMessage:
        # asyncio.Queue.get gives up cleanly when cancelled, so callers may use wait_for.
        while True:
            if self._cancelled and self._buffer.empty():
                raise StopAsyncIteration
            delivery = await self._buffer.get()
            if delivery is None:
                self._buffer.put_nowait(None)  # keep later calls ending too
                raise StopAsyncIteration
            if self._usable(delivery):
                return delivery
            # Its channel died (broker restart): the broker has requeued it already.
            self._unsettled.discard(delivery)
