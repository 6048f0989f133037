"""A synchronous client of the real RabbitMQ for the tests.

``Broker`` runs aio-pika on an event loop in a background thread, so the tests themselves stay
plain synchronous functions: they publish, read queue depths, and wait on an ``Inbox`` that
collects every message landing in a queue (happy-end, error-end).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import aio_pika
import aio_pika.abc
import aiormq.exceptions

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Received:
    """One message taken from a watched queue (``body`` as it came, ``data`` parsed)."""

    body: bytes
    data: Any
    at: float
    persistent: bool = False

    @property
    def payload(self) -> Any:
        return self.data.get("payload") if isinstance(self.data, dict) else None


class Inbox:
    """Every message delivered to one queue, waited on by a substring of its raw body."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._items: list[Received] = []
        self._changed = threading.Condition()

    def add(self, body: bytes, *, persistent: bool = False) -> None:
        try:
            data: Any = json.loads(body)
        except ValueError:
            data = None
        with self._changed:
            self._items.append(Received(body, data, time.monotonic(), persistent))
            self._changed.notify_all()

    def matching(self, needle: str) -> list[Received]:
        raw = needle.encode()
        with self._changed:
            return [item for item in self._items if raw in item.body]

    def wait_for(self, needle: str, count: int = 1, timeout: float = 30.0) -> list[Received]:
        """The first ``count`` messages whose body contains ``needle`` (AssertionError if late)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [item for item in self._items if needle.encode() in item.body]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{self.queue}: {len(found)} of {count} message(s) containing {needle!r} "
                        f"arrived within {timeout} s"
                    )
                self._changed.wait(min(left, 0.5))

    def expect(
        self, needle: str, count: int = 1, timeout: float = 30.0, quiet: float = 0.5
    ) -> list[Any]:
        """Exactly ``count`` messages for ``needle``: wait for them, then for ``quiet`` seconds
        check that no extra one (a duplicate, a stray output) follows. Returns parsed bodies."""
        self.wait_for(needle, count, timeout)
        time.sleep(quiet)
        found = self.matching(needle)
        assert len(found) == count, (
            f"{self.queue}: expected exactly {count} message(s) containing {needle!r}, "
            f"got {len(found)}: {[item.body[:300] for item in found]}"
        )
        return [item.data for item in found]

    def count_distinct(self, needle: str, key: Callable[[Any], object]) -> tuple[set[object], int]:
        """Distinct ``key(message)`` values among matching messages, and how many matched."""
        found = self.matching(needle)
        return {key(item.data) for item in found}, len(found)


class Broker:
    """A synchronous face over aio-pika (background event loop).

    Two connections: a robust one only for the inboxes' consumers (aio-pika restores them after
    a broker restart), and a plain one for everything else, reopened whenever it was lost, with
    a fresh channel per operation — so no operation depends on state restored after a restart,
    and a passive declare of a missing queue (which closes its channel) disturbs nothing.
    """

    def __init__(self, url: str, exchange: str) -> None:
        self.url = url
        self.exchange_name = exchange
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="broker", daemon=True)
        self._consumers: aio_pika.abc.AbstractRobustConnection | None = None
        self._ops: aio_pika.abc.AbstractConnection | None = None
        self._watch_channels: list[aio_pika.abc.AbstractChannel] = []

    # -- plumbing ----------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _on_channel(
        self,
        operation: Callable[[aio_pika.abc.AbstractChannel], Awaitable[T]],
        *,
        confirms: bool = False,
    ) -> T:
        """Run ``operation`` on a fresh channel; once more on a new connection if it was lost."""
        for attempt in (1, 2):
            if self._ops is None or self._ops.is_closed:
                self._ops = await aio_pika.connect(self.url, timeout=10)
            try:
                channel = await self._ops.channel(publisher_confirms=confirms)
            except (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError):
                self._ops = None  # lost (broker restarted, connection closed): reconnect
                if attempt == 2:
                    raise
                continue
            try:
                return await operation(channel)
            finally:
                if not channel.is_closed:
                    with contextlib.suppress(Exception):
                        await channel.close()
        raise AssertionError("unreachable")

    def open(self) -> None:
        self._thread.start()
        self._run(self._open())

    async def _open(self) -> None:
        self._consumers = await aio_pika.connect_robust(self.url, reconnect_interval=0.5)

        async def declare(channel: aio_pika.abc.AbstractChannel) -> None:
            await channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )

        await self._on_channel(declare)

    def stop_watching(self) -> None:
        """Close the channels consuming into inboxes (before their queues are deleted)."""

        async def _stop() -> None:
            for channel in self._watch_channels:
                with contextlib.suppress(Exception):
                    await channel.close()
            self._watch_channels.clear()

        self._run(_stop())

    def close(self) -> None:
        async def _close() -> None:
            for connection in (self._ops, self._consumers):
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close()

        try:
            self._run(_close(), timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    # -- queues ------------------------------------------------------------------------------

    def declare_queue(self, name: str) -> None:
        """A durable queue bound to the exchange with routing key = its name."""

        async def declare(channel: aio_pika.abc.AbstractChannel) -> None:
            queue = await channel.declare_queue(name, durable=True)
            await queue.bind(self.exchange_name, routing_key=name)

        self._run(self._on_channel(declare))

    def _passive(self, name: str) -> tuple[int, int]:
        """(ready messages, consumers) of an existing queue."""

        async def query(channel: aio_pika.abc.AbstractChannel) -> tuple[int, int]:
            result = (await channel.declare_queue(name, passive=True)).declaration_result
            return int(result.message_count or 0), int(result.consumer_count or 0)

        return self._run(self._on_channel(query))

    def depth(self, name: str) -> int:
        return self._passive(name)[0]

    def consumers(self, name: str) -> int:
        return self._passive(name)[1]

    def delete_queue(self, name: str) -> None:
        async def delete(channel: aio_pika.abc.AbstractChannel) -> None:
            await channel.queue_delete(name)

        try:
            self._run(self._on_channel(delete), timeout=10)
        except Exception as exc:  # cleanup goes on with the other names
            log.warning("could not delete queue %s: %s", name, exc)

    def delete_exchange(self) -> None:
        async def delete(channel: aio_pika.abc.AbstractChannel) -> None:
            await channel.exchange_delete(self.exchange_name)

        try:
            self._run(self._on_channel(delete), timeout=10)
        except Exception as exc:
            log.warning("could not delete exchange %s: %s", self.exchange_name, exc)

    # -- messages ----------------------------------------------------------------------------

    def publish(self, queue: str, message: Any) -> None:
        """Publish a dict as JSON (or raw bytes as they are), persistent and confirmed."""
        self.publish_many(queue, [message])

    def publish_many(self, queue: str, messages: Iterable[Any]) -> None:
        bodies = [m if isinstance(m, bytes) else json.dumps(m).encode() for m in messages]

        async def publish(channel: aio_pika.abc.AbstractChannel) -> None:
            exchange = await channel.get_exchange(self.exchange_name, ensure=False)
            for start in range(0, len(bodies), 100):
                await asyncio.gather(
                    *(
                        exchange.publish(
                            aio_pika.Message(
                                body,
                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                content_type="application/json",
                            ),
                            routing_key=queue,
                            mandatory=True,
                        )
                        for body in bodies[start : start + 100]
                    )
                )

        self._run(self._on_channel(publish, confirms=True), timeout=60)

    def watch(self, queue: str) -> Inbox:
        """Consume ``queue`` from now on into an Inbox (acking after storing)."""
        inbox = Inbox(queue)

        async def _consume() -> None:
            assert self._consumers is not None
            channel = await self._consumers.channel()
            self._watch_channels.append(channel)
            await channel.set_qos(prefetch_count=200)
            declared = await channel.declare_queue(queue, durable=True)

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                inbox.add(
                    message.body,
                    persistent=message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT,
                )
                await message.ack()

            await declared.consume(on_message)

        self._run(_consume())
        return inbox


def wait_for_broker(url: str, timeout: float = 60.0) -> None:
    """Block until a fresh AMQP connection to ``url`` succeeds."""

    async def _try() -> None:
        connection = await aio_pika.connect(url, timeout=3)
        await connection.close()

    deadline = time.monotonic() + timeout
    while True:
        try:
            asyncio.run(_try())
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"RabbitMQ did not come back within {timeout} s") from exc
            time.sleep(0.5)


def rabbitmqctl(*args: str) -> list[str]:
    """The ``rabbitmqctl`` command for the broker under test (``ASYA_TEST_RABBITMQ_NODE``)."""
    node = os.environ.get("ASYA_TEST_RABBITMQ_NODE")
    return ["rabbitmqctl", *(["-n", node] if node else []), *args]


def rabbitmq_queue_names() -> list[str]:
    """Every queue on the broker, via rabbitmqctl (empty when rabbitmqctl is unavailable)."""
    try:
        result = subprocess.run(
            rabbitmqctl("list_queues", "-q", "--no-table-headers", "name"),
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]
