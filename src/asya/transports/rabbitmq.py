"""RabbitMQ transport on aio-pika: the production backend (docs/reference/transports.md#rabbitmq).

Topology: one durable topic exchange; each queue is durable and bound with routing key = its
name. Publishes are persistent, confirmed and ``mandatory``, so a message nobody can receive
comes back as :class:`~asya.errors.UnroutableError` instead of vanishing.

Delayed publish (retries) must survive the publisher's restart, so the delay lives in the
broker: the message waits in ``asya-delay.<exchange>.<queue>.<ms>`` whose ``x-message-ttl``
dead-letters it back to the exchange with routing key = the target queue. ``x-expires`` removes
a delay queue left unused for its delay plus a minute.

Every delivery carries its delivery count (``delivery_count``): on a quorum queue the broker's
``x-delivery-count``; on a classic queue, which counts nothing, a redelivery is republished with
``x-asya-deliveries`` raised by one (confirmed) and acked before anything else sees it.

The connection is robust: aio-pika reconnects (here with growing pauses) and restores channels
and consumers by itself. A publish during an outage is retried with backoff for
``publish_timeout`` seconds, then fails with ``TransportError``. aio-pika is imported here only,
so the core install works without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractRobustChannel,
    AbstractRobustConnection,
)
from aiormq import spec
from aiormq.abc import DeliveredMessage

from asya.backoff import Backoff
from asya.errors import TransportError, UnroutableError, describe
from asya.transports import redact_url
from asya.transports._amqp import FAILURES, BackoffConnection, is_outage, translate
from asya.transports._buffered import BufferedSubscription
from asya.transports._rabbitmq_common import (
    RabbitMQSettings as RabbitMQSettings,  # re-exported: constructing this transport needs it
)
from asya.transports._rabbitmq_common import (
    delay_queue_arguments,
    delay_queue_name,
)
from asya.transports.base import Subscription, Transport
from asya.transports.delivery import Delivery
from asya.transports.delivery_count import delivery_number, recounted
from asya.transports.topology import BindingSpec, ExchangeSpec, QueueSpec

log = logging.getLogger(__name__)

_RECOUNT_RETRY_PAUSE = 1.0  # after a failed republish of a redelivery, before giving it back


def _headers_of(message: DeliveredMessage) -> dict[str, Any] | None:
    properties = message.header.properties if message.header is not None else None
    headers = properties.headers if properties is not None else None
    return headers if isinstance(headers, dict) else None


def _persistent_properties() -> spec.Basic.Properties:
    """What ``aio_pika.Message(body, delivery_mode=PERSISTENT)`` sends; a fresh object each
    time, as aiormq fills in its message id."""
    return spec.Basic.Properties(delivery_mode=2, headers={}, priority=0)


class RabbitMQDelivery(Delivery):
    """A delivery, settled on the channel it arrived on.

    The ack (or nack) is queued for the connection's writer without waiting for the write:
    nothing is lost if it never reaches the broker (the message is redelivered), and a channel
    close — sent after it on the same connection — reaches the broker after it.
    """

    def __init__(self, message: DeliveredMessage, queue: str) -> None:
        deliver = message.delivery
        assert isinstance(deliver, spec.Basic.Deliver) and deliver.delivery_tag is not None
        redelivered = bool(deliver.redelivered)
        deliveries = delivery_number(_headers_of(message), redelivered=redelivered)
        super().__init__(
            queue,
            message.body,
            # A recounted copy is a first delivery to the broker, not to its message.
            redelivered=redelivered or (deliveries is not None and deliveries > 1),
            deliveries=deliveries,
        )
        self.message = message
        self.channel = cast(aiormq.Channel, message.channel)
        self.tag: int = deliver.delivery_tag

    async def _settle(self, *, ack: bool, requeue: bool) -> None:
        try:
            if ack:
                await self.channel.basic_ack(self.tag, wait=False)
            else:
                await self.channel.basic_nack(self.tag, requeue=requeue, wait=False)
        except FAILURES as exc:  # translate() spelled out: this runs once per message
            what = f"settling a delivery from {self.queue!r}"
            raise TransportError(f"{what}: {describe(exc)}") from exc


class RabbitMQSubscription(BufferedSubscription[RabbitMQDelivery]):
    """A consumer on its own channel (QoS = prefetch).

    It consumes through aiormq directly: aio-pika's consumer wraps every delivery in an
    IncomingMessage and two extra tasks, a visible share of a sidecar's CPU time. The channel
    is aio-pika's robust one; after a reconnect it is reopened and ``_on_reopen`` consumes
    again with the same tag. ``serve`` runs the handler in the task aiormq delivers on;
    iterating buffers deliveries instead.

    After ``cancel`` the channel stays open until every delivery taken from it is settled (a
    delivery can only be acked on its own channel), then it is closed.
    """

    def __init__(
        self,
        queue: str,
        channel: AbstractRobustChannel,
        on_closed: Callable[[RabbitMQSubscription], None],
        republish: Callable[[str, DeliveredMessage], Awaitable[None]],
    ) -> None:
        super().__init__()
        self.queue = queue
        self.channel = channel
        self._on_closed = on_closed
        self._republish = republish
        self._tag = f"asya-{uuid.uuid4().hex}"
        self._underlay: aiormq.Channel | None = None
        self._cancel_called = False
        self._closing: asyncio.Future[None] | None = None

    async def start(self) -> None:
        self.channel.reopen_callbacks.add(self._on_reopen)
        await self._consume_on(await self.channel.get_underlay_channel())

    async def _consume_on(self, channel: aiormq.abc.AbstractChannel) -> None:
        underlay = self._underlay = cast(aiormq.Channel, channel)
        underlay.on_consumer_cancel_callbacks.add(self._on_broker_cancel)
        await underlay.basic_consume(self.queue, self._on_delivered, consumer_tag=self._tag)

    async def _on_reopen(self, channel: AbstractRobustChannel | None) -> None:
        """The connection came back and aio-pika reopened the channel: consume again."""
        if self._cancelled or channel is None:
            return
        try:
            with translate(f"consuming {self.queue!r} again after a reconnect"):
                await self._consume_on(await channel.get_underlay_channel())
        except TransportError as exc:
            self._end(exc)

    def _on_broker_cancel(self, frame: spec.Basic.Cancel) -> None:
        if frame.consumer_tag == self._tag:
            self._end(TransportError(f"the broker cancelled the consumer of {self.queue!r}"))

    async def _on_delivered(self, message: DeliveredMessage) -> None:
        delivery = RabbitMQDelivery(message, self.queue)
        if self._cancelled:
            with contextlib.suppress(TransportError):
                await delivery.nack(requeue=True)
            return
        if delivery.deliveries is None:
            await self._recount(delivery)
            return
        handler = self._hold(delivery)
        if handler is not None:
            await handler(delivery)

    async def _recount(self, delivery: RabbitMQDelivery) -> None:
        """A redelivery on a queue that keeps no count: republish it with its count raised
        (confirmed), then ack it; its copy is what gets handed out (delivery_count)."""
        try:
            await self._republish(self.queue, delivery.message)
        except TransportError as exc:
            log.error(
                "could not republish a redelivered message of %r with its delivery count; "
                "giving it back: %s",
                self.queue,
                exc,
            )
            await asyncio.sleep(_RECOUNT_RETRY_PAUSE)  # not a hot loop if the broker refuses
            with contextlib.suppress(TransportError):
                await delivery.nack(requeue=True)
            return
        with contextlib.suppress(TransportError):  # a lost ack: the original comes back
            await delivery.ack()

    def _usable(self, delivery: RabbitMQDelivery) -> bool:
        return not delivery.channel.is_closed

    def _settled(self, delivery: Delivery) -> None:
        self._unsettled.discard(delivery)
        if self._cancelled and not self._unsettled and self._closing is None:
            self._closing = asyncio.ensure_future(self.close())

    async def cancel(self) -> None:
        if self._cancel_called:
            return
        self._cancel_called = True
        self._cancelled = True
        self.channel.reopen_callbacks.discard(self._on_reopen)
        underlay = self._underlay
        try:
            if underlay is not None and not underlay.is_closed and self._tag in underlay.consumers:
                with translate(f"cancelling the consumer of {self.queue!r}"):
                    await underlay.basic_cancel(self._tag)
        finally:
            await self._give_back_buffered()  # no close() scheduled by _settled for these
            self._end()
            if not self._unsettled:
                await self.close()

    async def close(self) -> None:
        """Stop iteration and close the channel; the broker requeues what is unacked."""
        self._end()
        self.channel.reopen_callbacks.discard(self._on_reopen)
        self._on_closed(self)
        if not self.channel.is_closed:
            with contextlib.suppress(*FAILURES):
                await self.channel.close()


class RabbitMQTransport(Transport):
    name = "rabbitmq"

    def __init__(self, settings: RabbitMQSettings) -> None:
        self.settings = settings
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._subscriptions: list[RabbitMQSubscription] = []

    @property
    def _target(self) -> str:
        return redact_url(self.settings.url)

    def _conn(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise TransportError("rabbitmq transport is not connected (call connect() first)")
        return self._connection

    async def connect(self) -> None:
        if self._connection is not None:
            return
        settings = self.settings
        with translate(f"connecting to {self._target}"):
            connection = await aio_pika.connect_robust(
                settings.url,
                timeout=settings.connect_timeout,
                reconnect_interval=settings.reconnect_interval,
                connection_class=BackoffConnection,
            )
        try:
            with translate(f"opening the publishing channel on {self._target}"):
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        self._channel = channel

    @contextlib.asynccontextmanager
    async def _scratch_channel(self, what: str) -> AsyncIterator[AbstractChannel]:
        """A short-lived channel for operations whose failure closes the channel (passive)."""
        with translate(what):
            channel = await self._conn().channel()
            try:
                yield channel
            finally:
                if not channel.is_closed:
                    await channel.close()

    async def declare_queue(self, queue: str) -> None:
        async with self._scratch_channel(f"declaring queue {queue!r}") as channel:
            exchange = await channel.declare_exchange(
                self.settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True
            )
            declared = await channel.declare_queue(queue, durable=True)
            await declared.bind(exchange, routing_key=queue)

    async def _publishing_exchange(self) -> AbstractExchange:
        """The exchange on the confirming channel, declared on first use.

        Declared lazily, not in connect(), so a transport opened only to inspect or declare
        other things (``asya queues apply`` with a definitions file) creates nothing else.
        """
        if self._channel is None:
            raise TransportError("rabbitmq transport is not connected (call connect() first)")
        if self._exchange is None:
            with translate(f"declaring exchange {self.settings.exchange!r}"):
                self._exchange = await self._channel.declare_exchange(
                    self.settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True
                )
        return self._exchange

    async def publish(self, queue: str, body: bytes, *, delay: float = 0.0) -> None:
        """Publish, retrying with backoff while the broker is unreachable (up to
        ``publish_timeout``); a refusal by the broker is raised at once."""
        self._conn()
        deadline = time.monotonic() + self.settings.publish_timeout
        backoff = Backoff(0.1, cap=2.0)
        while True:
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0.001)):
                    await self._publish_once(queue, body, delay)
                return
            except UnroutableError:
                raise
            except (TransportError, TimeoutError) as exc:
                cause = exc.__cause__ if isinstance(exc, TransportError) else exc
                if not is_outage(cause):
                    raise
                pause = backoff.next()
                if time.monotonic() + pause >= deadline:
                    raise TransportError(
                        f"could not publish to {queue!r} on {self._target} within "
                        f"{self.settings.publish_timeout:g} s: {describe(cause or exc)}"
                    ) from exc
                log.warning("publish to %r failed (%s); retrying", queue, describe(cause or exc))
                await asyncio.sleep(pause)

    async def _publish_once(self, queue: str, body: bytes, delay: float) -> None:
        exchange = (await self._publishing_exchange()).name
        routing_key = queue
        if delay > 0:
            await self._require_queue(queue)
            routing_key = await self._declare_delay_queue(queue, delay)
            exchange = ""  # the default exchange routes by queue name
        assert self._channel is not None  # _publishing_exchange checked it
        try:
            # Straight to aiormq, as aio-pika's Exchange.publish does, without building an
            # aio_pika.Message first (about 20 µs of CPU per publish).
            if self._channel.is_closed:
                raise aiormq.exceptions.ChannelInvalidStateError(f"{self._channel!r} closed")
            channel = cast(aiormq.Channel, await self._channel.get_underlay_channel())
            await channel.basic_publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                properties=_persistent_properties(),
                mandatory=True,
                wait=False,  # the confirm below is what counts; no need to wait for the write
            )
        except aiormq.exceptions.PublishError as exc:
            raise UnroutableError(queue) from exc
        except aiormq.exceptions.DeliveryError as exc:
            raise TransportError(f"broker refused the message for {queue!r}: {exc}") from exc
        except FAILURES as exc:
            raise TransportError(f"publishing to {queue!r}: {describe(exc)}") from exc

    async def _republish_recounted(self, queue: str, message: DeliveredMessage) -> None:
        """Publish ``message`` again, straight to ``queue``, its delivery count raised by one;
        returns once the broker confirmed it (persistent, mandatory)."""
        properties = copy.copy(message.header.properties)
        properties.headers = recounted(_headers_of(message))
        properties.delivery_mode = 2
        await self._publishing_exchange()  # the confirming channel is ready
        assert self._channel is not None
        with translate(f"republishing a redelivered message to {queue!r}"):
            channel = cast(aiormq.Channel, await self._channel.get_underlay_channel())
            try:
                await channel.basic_publish(
                    message.body,
                    exchange="",  # the default exchange routes by queue name
                    routing_key=queue,
                    properties=properties,
                    mandatory=True,
                )
            except aiormq.exceptions.PublishError as exc:
                raise UnroutableError(queue) from exc
            except aiormq.exceptions.DeliveryError as exc:
                raise TransportError(f"broker refused the copy for {queue!r}: {exc}") from exc

    async def _require_queue(self, queue: str) -> None:
        """A delayed message is dead-lettered blind: refuse now if nobody would receive it."""
        try:
            async with self._scratch_channel(f"checking queue {queue!r}") as channel:
                await channel.declare_queue(queue, passive=True, robust=False)  # type: ignore[call-arg]
        except TransportError as exc:
            if isinstance(exc.__cause__, aiormq.exceptions.ChannelNotFoundEntity):
                raise UnroutableError(queue) from exc
            raise

    async def _declare_delay_queue(self, queue: str, delay: float) -> str:
        name = delay_queue_name(self.settings.exchange, queue, delay)
        arguments = delay_queue_arguments(self.settings.exchange, queue, delay)
        # Redeclared on every delayed publish: that also restarts the x-expires countdown.
        async with self._scratch_channel(f"declaring delay queue {name!r}") as channel:
            await channel.declare_queue(name, durable=True, arguments=arguments, robust=False)  # type: ignore[call-arg]
        return name

    async def consume(self, queue: str, *, prefetch: int = 1) -> Subscription:
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, got {prefetch}")
        connection = self._conn()
        with translate(f"consuming {queue!r}"):
            channel = await connection.channel()
            assert isinstance(channel, aio_pika.RobustChannel)
            try:
                await channel.set_qos(prefetch_count=prefetch)
                await channel.declare_queue(queue, passive=True)
                subscription = RabbitMQSubscription(
                    queue, channel, self._forget, self._republish_recounted
                )
                await subscription.start()
            except BaseException:
                if not channel.is_closed:
                    await channel.close()
                raise
        self._subscriptions.append(subscription)
        return subscription

    def _forget(self, subscription: RabbitMQSubscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)

    async def depth(self, queue: str) -> int:
        async with self._scratch_channel(f"reading the depth of {queue!r}") as channel:
            declared = await channel.declare_queue(queue, passive=True, robust=False)  # type: ignore[call-arg]
            result = declared.declaration_result
            return int(result.message_count or 0)

    async def consumers(self, queue: str) -> int | None:
        async with self._scratch_channel(f"reading the consumers of {queue!r}") as channel:
            declared = await channel.declare_queue(queue, passive=True, robust=False)  # type: ignore[call-arg]
            return int(declared.declaration_result.consumer_count or 0)

    async def purge(self, queue: str) -> int:
        async with self._scratch_channel(f"purging {queue!r}") as channel:
            declared = await channel.declare_queue(queue, passive=True, robust=False)  # type: ignore[call-arg]
            result = await declared.purge()
            return int(result.message_count or 0)

    async def delete_queue(self, queue: str) -> None:
        async with self._scratch_channel(f"deleting {queue!r}") as channel:
            underlay = await channel.get_underlay_channel()
            await underlay.queue_delete(queue)

    # -- explicit topology (asya queues apply) -----------------------------------------------

    async def declare_exchange(self, spec: ExchangeSpec) -> None:
        async with self._scratch_channel(f"declaring exchange {spec.name!r}") as channel:
            underlay = await channel.get_underlay_channel()
            await underlay.exchange_declare(
                spec.name,
                exchange_type=spec.type,
                durable=spec.durable,
                auto_delete=spec.auto_delete,
                internal=spec.internal,
                arguments=dict(spec.arguments),
            )

    async def declare_queue_spec(self, spec: QueueSpec) -> None:
        async with self._scratch_channel(f"declaring queue {spec.name!r}") as channel:
            underlay = await channel.get_underlay_channel()
            await underlay.queue_declare(
                spec.name,
                durable=spec.durable,
                auto_delete=spec.auto_delete,
                arguments=dict(spec.arguments),
            )

    async def bind(self, spec: BindingSpec) -> None:
        what = f"binding {spec.destination_type} {spec.destination!r} to {spec.source!r}"
        async with self._scratch_channel(what) as channel:
            underlay = await channel.get_underlay_channel()
            if spec.destination_type == "exchange":
                await underlay.exchange_bind(
                    destination=spec.destination,
                    source=spec.source,
                    routing_key=spec.routing_key,
                    arguments=dict(spec.arguments),
                )
            else:
                await underlay.queue_bind(
                    spec.destination,
                    spec.source,
                    routing_key=spec.routing_key,
                    arguments=dict(spec.arguments),
                )

    async def ping(self) -> None:
        with translate(f"pinging {self._target}"):
            async with asyncio.timeout(self.settings.connect_timeout):
                async with self._scratch_channel(f"pinging {self._target}"):
                    pass

    async def delete_exchange(self) -> None:
        """Remove this transport's exchange (tests and tooling clean up with this)."""
        async with self._scratch_channel(f"deleting exchange {self.settings.exchange!r}") as ch:
            underlay = await ch.get_underlay_channel()
            await underlay.exchange_delete(self.settings.exchange)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        subscriptions, self._subscriptions = self._subscriptions, []
        for subscription in subscriptions:
            await subscription.close()
        self._exchange = None
        self._channel = None
        with contextlib.suppress(*FAILURES):
            await connection.close()
