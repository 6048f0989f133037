"""An in-process transport for unit tests, with the same semantics as the real ones.

``memory://name`` names a broker living in this process: every Transport opened on the same
name shares its queues, as processes share a RabbitMQ vhost. Nothing survives the process.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass, field

from asya.errors import TransportError, UnroutableError
from asya.transports._polling import PollingSubscription
from asya.transports.base import Subscription, Transport
from asya.transports.delivery import Delivery


@dataclass(order=True)
class _Message:
    seq: int
    body: bytes = field(compare=False)
    deliveries: int = field(default=0, compare=False)


@dataclass
class _Queue:
    ready: list[_Message] = field(default_factory=list)  # heap by publish order
    delayed: list[tuple[float, int, _Message]] = field(default_factory=list)  # heap by due time
    subscriptions: set[MemorySubscription] = field(default_factory=set)

    def promote_due(self, now: float) -> None:
        while self.delayed and self.delayed[0][0] <= now:
            _, _, message = heapq.heappop(self.delayed)
            heapq.heappush(self.ready, message)

    def wake_consumers(self) -> None:
        for subscription in self.subscriptions:
            subscription.wake()


class MemoryBroker:
    """The queues behind one ``memory://name``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.queues: dict[str, _Queue] = {}
        self._seq = itertools.count()

    def get(self, queue: str) -> _Queue:
        try:
            return self.queues[queue]
        except KeyError:
            raise TransportError(f"no queue named {queue!r} on memory://{self.name}") from None

    def publish(self, queue: str, body: bytes, delay: float) -> None:
        state = self.queues.get(queue)
        if state is None:
            raise UnroutableError(queue)
        message = _Message(next(self._seq), bytes(body))
        if delay > 0:
            heapq.heappush(state.delayed, (time.monotonic() + delay, message.seq, message))
        else:
            heapq.heappush(state.ready, message)
        state.wake_consumers()

    def requeue(self, queue: str, message: _Message) -> None:
        state = self.queues.get(queue)
        if state is not None:  # a deleted queue takes its messages with it
            heapq.heappush(state.ready, message)
            state.wake_consumers()


_BROKERS: dict[str, MemoryBroker] = {}


def get_broker(name: str) -> MemoryBroker:
    """The process-wide broker called ``name`` (created on first use)."""
    broker = _BROKERS.get(name)
    if broker is None:
        broker = _BROKERS[name] = MemoryBroker(name)
    return broker


class MemoryDelivery(Delivery):
    def __init__(self, broker: MemoryBroker, queue: str, message: _Message) -> None:
        super().__init__(
            queue,
            message.body,
            redelivered=message.deliveries > 1,
            deliveries=message.deliveries,
        )
        self._broker = broker
        self._message = message

    async def _settle(self, *, ack: bool, requeue: bool) -> None:
        if not ack and requeue:
            self._broker.requeue(self.queue, self._message)

    def give_back(self) -> None:
        self._broker.requeue(self.queue, self._message)


class MemorySubscription(PollingSubscription):
    def __init__(self, broker: MemoryBroker, queue: str, prefetch: int) -> None:
        super().__init__(queue, prefetch)
        self._broker = broker

    async def take(self, limit: int) -> list[Delivery]:
        state = self._broker.queues.get(self.queue)
        if state is None:
            return []
        state.promote_due(time.monotonic())
        taken: list[Delivery] = []
        while state.ready and len(taken) < limit:
            message = heapq.heappop(state.ready)
            message.deliveries += 1
            taken.append(MemoryDelivery(self._broker, self.queue, message))
        return taken

    async def release(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            if isinstance(delivery, MemoryDelivery):
                delivery.give_back()

    async def cancel(self) -> None:
        await super().cancel()
        state = self._broker.queues.get(self.queue)
        if state is not None:
            state.subscriptions.discard(self)

    def idle_timeout(self, idle_rounds: int) -> float | None:
        state = self._broker.queues.get(self.queue)
        if state is None or not state.delayed:
            return None
        return max(0.0, state.delayed[0][0] - time.monotonic())


class MemoryTransport(Transport):
    """A Transport on an in-process :class:`MemoryBroker`."""

    name = "memory"

    def __init__(self, broker_name: str = "default") -> None:
        self.broker = get_broker(broker_name)
        self._subscriptions: set[MemorySubscription] = set()
        self._connected = False

    def _require_connected(self) -> None:
        if not self._connected:
            raise TransportError("memory transport is not connected (call connect() first)")

    async def connect(self) -> None:
        self._connected = True

    async def declare_queue(self, queue: str) -> None:
        self._require_connected()
        self.broker.queues.setdefault(queue, _Queue())

    async def publish(self, queue: str, body: bytes, *, delay: float = 0.0) -> None:
        self._require_connected()
        self.broker.publish(queue, body, delay)

    async def consume(self, queue: str, *, prefetch: int = 1) -> Subscription:
        self._require_connected()
        state = self.broker.get(queue)
        subscription = MemorySubscription(self.broker, queue, prefetch)
        self._subscriptions = {s for s in self._subscriptions if not s.finished}
        state.subscriptions.add(subscription)
        self._subscriptions.add(subscription)
        return subscription

    async def depth(self, queue: str) -> int:
        self._require_connected()
        state = self.broker.get(queue)
        state.promote_due(time.monotonic())
        return len(state.ready)

    async def purge(self, queue: str) -> int:
        self._require_connected()
        state = self.broker.get(queue)
        state.promote_due(time.monotonic())
        dropped = len(state.ready)
        state.ready.clear()
        return dropped

    async def ping(self) -> None:
        self._require_connected()

    async def delete_queue(self, queue: str) -> None:
        self._require_connected()
        state = self.broker.queues.pop(queue, None)
        if state is not None:
            for subscription in list(state.subscriptions):
                await subscription.cancel()

    async def close(self) -> None:
        if not self._connected:
            return
        self._connected = False
        for subscription in self._subscriptions:
            await subscription.shutdown()
        self._subscriptions.clear()
