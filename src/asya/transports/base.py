"""The transport protocol: the few queue operations the sidecar, gateway and mesh need.

Semantics every implementation keeps (checked by the contract suite in
``tests/integration/transports``):

* Queues are named; publishing to a queue name routes through the transport's exchange (for
  RabbitMQ a topic exchange with routing key = queue name). Publishing to a name with no queue
  raises :class:`~asya.errors.UnroutableError`; the message is never silently dropped.
* ``publish`` returns only once the message is durably accepted (publisher confirm / commit).
* Delivery is at-least-once: a delivered message stays owned by its consumer until ``ack``;
  ``nack(requeue=True)`` or the consumer's death returns it to the queue (``redelivered`` set).
* ``publish(..., delay=s)`` makes the message visible only after ``s`` seconds and survives a
  restart of the publishing process.
* Per queue, messages are delivered in publish order (redeliveries aside).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable


class IncomingMessage(abc.ABC):
    """One delivery. Exactly one of ``ack`` / ``nack`` settles it; later calls are no-ops.

    Settling a delivery its transport no longer holds (closed, connection lost, lease expired)
    raises ``TransportError``: the message has returned to its queue and will come again.
    """

    body: bytes
    queue: str
    redelivered: bool
    #: How many times this message has been delivered, this delivery included (1 the first
    #: time), counted across consumer crashes; None when the transport cannot tell
    #: (docs/reference/transports.md#delivery-count).
    deliveries: int | None

    @abc.abstractmethod
    async def ack(self) -> None:
        """Remove the message from the queue for good."""

    @abc.abstractmethod
    async def nack(self, *, requeue: bool = True) -> None:
        """Give the message back (``requeue=True``) or drop it (``requeue=False``)."""


class Subscription(abc.ABC):
    """An active consumer on one queue; iterate it to receive deliveries."""

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[IncomingMessage]:
        """Yield deliveries until :meth:`cancel` is called or the transport closes."""

    @abc.abstractmethod
    async def cancel(self) -> None:
        """Stop receiving new deliveries. Messages already delivered can still be settled."""

    async def serve(self, handler: Callable[[IncomingMessage], Awaitable[None]]) -> None:
        """Run ``handler`` on every delivery, concurrently, until the subscription ends.

        Handlers still running then go on; a caller that must wait for them tracks them
        (``asyncio.current_task()`` inside the handler). Here each runs in a task of its own;
        a transport that pushes deliveries runs it in the task that delivers the message.
        """
        async for delivery in self:
            run_in_background(handler(delivery))


_background: set[asyncio.Future[None]] = set()


def run_in_background(awaitable: Awaitable[None]) -> None:
    """Run ``awaitable`` as a task the event loop cannot lose (it holds weak references)."""
    task = asyncio.ensure_future(awaitable)
    _background.add(task)
    task.add_done_callback(_background.discard)


class Transport(abc.ABC):
    """A connection to a queueing backend."""

    #: Short name used in metrics labels: ``rabbitmq``, ``sqs``, ``sqlite`` or ``memory``.
    name: str

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection (idempotent)."""

    @abc.abstractmethod
    async def declare_queue(self, queue: str) -> None:
        """Create ``queue`` (durable) and its binding if missing; idempotent."""

    @abc.abstractmethod
    async def publish(self, queue: str, body: bytes, *, delay: float = 0.0) -> None:
        """Publish durably to ``queue``; confirmed before returning.

        Raises ``UnroutableError`` when no such queue exists and ``TransportError`` when the
        backend cannot accept the message.
        """

    @abc.abstractmethod
    async def consume(self, queue: str, *, prefetch: int = 1) -> Subscription:
        """Start consuming ``queue`` with at most ``prefetch`` unsettled deliveries."""

    @abc.abstractmethod
    async def depth(self, queue: str) -> int:
        """Messages ready for delivery (not counting delayed or in-flight ones)."""

    async def consumers(self, queue: str) -> int | None:
        """How many consumers ``queue`` has now; None when this transport cannot tell."""
        return None

    @abc.abstractmethod
    async def purge(self, queue: str) -> int:
        """Drop every ready message; return how many were dropped."""

    @abc.abstractmethod
    async def delete_queue(self, queue: str) -> None:
        """Remove ``queue`` and its messages (tests and tooling clean up with this)."""

    async def ping(self) -> None:
        """Raise ``TransportError`` unless the backend answers now (readiness probes)."""
        return None

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection; pending deliveries return to their queues."""

    async def __aenter__(self) -> Transport:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
