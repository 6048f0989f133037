"""RabbitMQ transport on py-amqp driven by the asyncio loop: the sidecar's hot path
(docs/reference/transports.md#rabbitmq).

Same broker layout and guarantees as the aio-pika transport (:mod:`asya.transports.rabbitmq`):
one durable topic exchange, durable queues bound by their names, persistent ``mandatory``
publishes confirmed before ``publish`` returns, unroutable ones raised as
:class:`~asya.errors.UnroutableError`, delays held in TTL queues (:mod:`._rabbitmq_common`).

How it runs: the connection's socket is registered with ``loop.add_reader``; when it is
readable, ``drain_events(timeout=0)`` decodes every complete frame (py-amqp keeps a partial
frame for the next read) and dispatches it to plain callbacks: a delivery starts one task, a
confirm resolves the publish's future, a return marks it unroutable. Publishes and acks are
written at once, without waiting. Nothing here frames AMQP by hand.

Operations that wait for the broker's answer and are rare (declare, depth, purge, delete,
the delay queue of a retry) go through a second, blocking connection in a worker thread
(:class:`._pyamqp.ControlConnection`); opening a consumer waits on the loop for one round trip.

Every delivery carries its delivery count (:mod:`.delivery_count`): on a quorum queue the
broker's ``x-delivery-count``; on a classic queue, which counts nothing, a redelivery is
published again with ``x-asya-deliveries`` raised by one (confirmed) and acked before anything
else sees it.

When the connection drops, pending publishes fail as an outage (``publish`` retries them with
backoff for ``publish_timeout``), deliveries taken from it can no longer be settled (the broker
requeues them), and a background task reconnects with growing pauses and consumes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import amqp
from amqp import exceptions as amqp_errors
from amqp.serialization import dumps

from asya.backoff import Backoff
from asya.errors import TransportError, UnroutableError, describe
from asya.transports import redact_url
from asya.transports._buffered import BufferedSubscription
from asya.transports._pyamqp import (
    FAILURES,
    HEARTBEAT,
    ConnectionLost,
    ControlConnection,
    LoopChannel,
    close_quietly,
    is_not_found,
    is_outage,
    open_connection,
    read_ahead,
    translate,
    would_block,
)
from asya.transports._rabbitmq_common import (
    RabbitMQSettings,
    delay_queue_arguments,
    delay_queue_name,
)
from asya.transports.base import Subscription, Transport, run_in_background
from asya.transports.delivery import Delivery
from asya.transports.delivery_count import delivery_number, recounted
from asya.transports.topology import BindingSpec, ExchangeSpec, QueueSpec

log = logging.getLogger(__name__)

MAX_RECONNECT_PAUSE = 30.0
_RECOUNT_RETRY_PAUSE = 1.0
_ACK = amqp.spec.Basic.Ack


class _Link:
    """One live connection on the loop: its reader, its confirming channel, its publishes."""

    def __init__(
        self,
        connection: amqp.Connection,
        publisher: LoopChannel,
        loop: asyncio.AbstractEventLoop,
        on_lost: Callable[[_Link, BaseException], None],
    ) -> None:
        self.connection = connection
        self.loop = loop
        self.alive = True
        self._on_lost = on_lost
        self._sock = connection.sock
        self._fd = self._sock.fileno()
        self._blocking_timeout = self._sock.gettimeout()
        self._next_seq = 1
        self._id_prefix = uuid.uuid4().hex[:12] + "."
        # seq -> (future, queue) in publish order; returned: seqs the broker sent back
        self.pending: dict[int, tuple[asyncio.Future[None], str]] = {}
        self.returned: set[int] = set()
        self.calls: set[asyncio.Future[tuple[Any, ...]]] = set()
        self.publisher = publisher
        publisher.events["basic_ack"].add(self._on_ack)
        publisher.events["basic_nack"].add(self._on_nack)
        publisher.events["basic_return"].add(self._on_return)
        publisher.on_broker_close = self.lose
        # Every frame py-amqp writes from here on is gathered and sent once per loop turn:
        # a relayed message's publish and ack (and their neighbours') cost one system call.
        self._transport = connection.transport
        self._outgoing: list[bytes] = []
        self._transport._write = self._gather
        # The publish and ack of every message go straight to py-amqp's frame writer (the
        # encoding is py-amqp's): its basic_publish and basic_ack add a generator context
        # manager, a capability lookup and a promise per call. The publish's method
        # arguments, the same for every message to a queue, are encoded once per queue.
        self._write_frame = connection.frame_writer
        self._publish_args: dict[tuple[str, str], bytes] = {}
        self._acking: list[LoopChannel] = []  # channels with acks to send this loop turn
        loop.add_reader(self._fd, self._readable)
        self._heartbeat = loop.create_task(self._beat(), name="amqp-heartbeat")

    # -- reading -----------------------------------------------------------------------------

    def _readable(self) -> None:
        """Decode and dispatch every complete frame, then give the loop back.

        The socket is non-blocking for the whole pass (py-amqp would switch it for each frame);
        the callbacks only start tasks and settle futures, and the few frames py-amqp answers
        itself (channel.close-ok, heartbeats) are tiny.
        """
        # connection.blocking_read(None) without its no-op having_timeout(None) context
        read_frame = self._transport.read_frame
        on_frame = self.connection.on_inbound_frame
        sock = self._sock
        sock.settimeout(0)
        try:
            while self.alive:
                on_frame(read_frame())
        except BaseException as exc:
            if not would_block(exc):
                self.lose(exc)
        finally:
            if self.alive:
                sock.settimeout(self._blocking_timeout)

    def _gather(self, data: bytes) -> None:
        if not self._outgoing and not self._acking:
            self.loop.call_soon(self._flush)
        self._outgoing.append(bytes(data))

    def ack(self, channel: LoopChannel, tag: int) -> None:
        """Ack ``tag`` at the end of this loop turn, with its channel's other acks."""
        if channel.connection is None:
            raise amqp_errors.RecoverableConnectionError("the channel is closed")
        channel.unsettled.discard(tag)
        if not channel.acks:
            if not self._outgoing and not self._acking:
                self.loop.call_soon(self._flush)
            self._acking.append(channel)
        channel.acks.append(tag)

    def write_acks(self) -> None:
        """Write the acks gathered this turn: one ``multiple`` ack for those below every
        unsettled tag of their channel (nothing unsettled is acked with them: at-least-once
        holds), one ack each for the rest (a slow message holds back no other's ack)."""
        for channel in self._acking:  # still listed while writing: no second flush scheduled
            tags, channel.acks = channel.acks, []
            if channel.connection is None:  # closed meanwhile: the broker requeued them
                continue
            lowest = min(channel.unsettled, default=None)
            below = [t for t in tags if lowest is None or t < lowest]
            if below:
                self.send_method(channel, _ACK, dumps("Lb", (max(below), True)))
            for tag in tags:
                if lowest is not None and tag > lowest:
                    self.send_method(channel, _ACK, dumps("Lb", (tag, False)))
        self._acking = []

    def _flush(self) -> None:
        if self._acking and self.alive:
            self.write_acks()
        chunks, self._outgoing = self._outgoing, []
        if not chunks or not self.alive:
            return
        try:
            self._sock.sendall(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        except OSError as exc:
            self.lose(exc)

    def _stop_gathering(self) -> None:
        """Send what is gathered and write directly again (a blocking close follows)."""
        self.write_acks()
        self._transport._write = self._sock.sendall
        chunks, self._outgoing = self._outgoing, []
        if chunks:
            with contextlib.suppress(OSError):
                self._sock.sendall(b"".join(chunks))

    async def _beat(self) -> None:
        while self.alive:
            await asyncio.sleep(HEARTBEAT / 4)
            try:
                self.connection.heartbeat_tick(rate=2)
            except FAILURES as exc:
                self.lose(exc)

    def lose(self, exc: BaseException) -> None:
        """The connection is gone (or broken): stop using it and tell the transport."""
        if not self.alive:
            return
        self.alive = False
        self.loop.remove_reader(self._fd)
        if asyncio.current_task() is not self._heartbeat:
            self._heartbeat.cancel()
        pending, self.pending = self.pending, {}
        for future, queue in pending.values():
            if not future.done():
                future.set_exception(
                    ConnectionLost(f"publishing to {queue!r}: connection lost ({describe(exc)})")
                )
        for call in self.calls:
            if not call.done():
                call.set_exception(ConnectionLost(f"connection lost ({describe(exc)})"))
        close_quietly_nowait(self.connection)
        self._on_lost(self, exc)

    def close(self) -> None:
        """Stop reading; the caller closes the connection (politely, off the loop)."""
        if self.alive:
            self._stop_gathering()
            self.alive = False
            self.loop.remove_reader(self._fd)
            self.publisher.events.clear()  # no callbacks from the closing thread
            self._heartbeat.cancel()
            for future, queue in self.pending.values():
                if not future.done():
                    future.set_exception(TransportError(f"publishing to {queue!r}: closed"))
            self.pending = {}

    # -- asking the broker without blocking the loop ------------------------------------------

    async def call(
        self, channel: LoopChannel, method: Any, argsig: str, args: tuple[Any, ...], reply: Any
    ) -> tuple[Any, ...]:
        """Send ``method`` on ``channel`` and wait (on the loop) for its ``reply``'s arguments.

        A broker closing the channel raises its error (``amqp.exceptions.ChannelError``);
        losing the connection raises ConnectionLost.
        """
        if not self.alive:
            raise ConnectionLost("connection lost")
        future: asyncio.Future[tuple[Any, ...]] = self.loop.create_future()

        def answered(_method: Any, *values: Any) -> None:
            if not future.done():
                future.set_result(values)

        def refused(error: BaseException) -> None:
            if not future.done():
                future.set_exception(error)

        channel._pending[reply] = answered
        channel.on_broker_close = refused
        self.calls.add(future)
        try:
            channel.send_method(method, argsig, args)
            return await future
        except FAILURES as exc:
            if isinstance(exc, OSError):
                self.lose(exc)
            raise
        finally:
            self.calls.discard(future)
            channel._pending.pop(reply, None)

    async def open_channel(self) -> LoopChannel:
        channel = LoopChannel(self.connection, None, auto_decode=False)
        await self.call(channel, amqp.spec.Channel.Open, "s", ("",), amqp.spec.Channel.OpenOk)
        return channel

    # -- publishing --------------------------------------------------------------------------

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        queue: str,
        properties: dict[str, Any] | None = None,
    ) -> asyncio.Future[None]:
        """Write the publish now (persistent; ``properties`` kept, but for the message id
        that matches a return); the future ends with its confirm."""
        seq = self._next_seq
        self._next_seq = seq + 1
        future = self.loop.create_future()
        self.pending[seq] = (future, queue)
        message_id = self._id_prefix + str(seq)
        if properties is None:
            message = amqp.Message(
                body, priority=0, application_headers={}, delivery_mode=2, message_id=message_id
            )
        else:
            message = amqp.Message(
                body, **{**properties, "delivery_mode": 2, "message_id": message_id}
            )
        args = self._publish_args.get((exchange, routing_key))
        if args is None:
            if len(self._publish_args) >= 1024:
                self._publish_args.clear()
            args = dumps("Bssbb", (0, exchange, routing_key, True, False))  # mandatory
            self._publish_args[exchange, routing_key] = args
        try:
            self.send_method(self.publisher, amqp.spec.Basic.Publish, args, message)
        except FAILURES as exc:
            self.pending.pop(seq, None)
            self.lose(exc)
            raise ConnectionLost(f"publishing to {queue!r}: {describe(exc)}") from exc
        return future

    def send_method(
        self, channel: amqp.Channel, method: Any, args: bytes, content: Any = None
    ) -> None:
        """Write one method (with its content) on ``channel``: its ``send_method`` without
        the promise, for methods that wait for no answer."""
        if channel.connection is None:
            raise amqp_errors.RecoverableConnectionError("the channel is closed")
        self._write_frame(1, channel.channel_id, method, args, content)

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Any) -> None:
        message_id = str(message.properties.get("message_id", ""))
        if message_id.startswith(self._id_prefix):
            with contextlib.suppress(ValueError):
                self.returned.add(int(message_id[len(self._id_prefix) :]))

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._confirm(delivery_tag, multiple, refused=False)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._confirm(delivery_tag, multiple, refused=True)

    def _confirm(self, tag: int, multiple: bool, *, refused: bool) -> None:
        pending = self.pending
        if multiple:
            done = []
            for seq in pending:  # in publish order
                if seq > tag:
                    break
                done.append(seq)
        else:
            done = [tag]
        for seq in done:
            entry = pending.pop(seq, None)
            if entry is None:
                continue
            future, queue = entry
            if future.done():
                self.returned.discard(seq)
            elif seq in self.returned:
                self.returned.discard(seq)
                future.set_exception(UnroutableError(queue))
            elif refused:
                future.set_exception(TransportError(f"broker refused the message for {queue!r}"))
            else:
                future.set_result(None)


def _open_publishing(settings: RabbitMQSettings) -> tuple[amqp.Connection, LoopChannel]:
    """Connect and open the confirming channel (blocking: runs in a worker thread)."""
    connection = open_connection(settings)
    read_ahead(connection)
    try:
        publisher = LoopChannel(connection, None, auto_decode=False)
        publisher.open()
        publisher.confirm_select()
    except BaseException:
        close_quietly(connection)
        raise
    return connection, publisher


def _headers_of(message: amqp.Message) -> dict[str, Any] | None:
    headers = message.properties.get("application_headers")
    return headers if isinstance(headers, dict) else None


def close_quietly_nowait(connection: amqp.Connection) -> None:
    """Drop a broken connection's socket without talking to the broker."""
    with contextlib.suppress(Exception):
        connection.collect()


class PyAmqpDelivery(Delivery):
    """A delivery, settled on its channel with a write that does not wait."""

    __slots__ = ("channel", "link", "message", "tag")

    def __init__(
        self, queue: str, message: amqp.Message, channel: LoopChannel, link: _Link
    ) -> None:
        info = message.delivery_info
        redelivered = bool(info["redelivered"])
        deliveries = delivery_number(_headers_of(message), redelivered=redelivered)
        super().__init__(
            queue,
            message.body,
            # A recounted copy is a first delivery to the broker, not to its message.
            redelivered=redelivered or (deliveries is not None and deliveries > 1),
            deliveries=deliveries,
        )
        self.message = message
        self.channel = channel
        self.link = link
        self.tag: int = info["delivery_tag"]
        channel.unsettled.add(self.tag)

    async def _settle(self, *, ack: bool, requeue: bool) -> None:
        link = self.link
        if not link.alive:
            raise TransportError(
                f"settling a delivery from {self.queue!r}: its connection was lost, "
                "so the broker returns it to the queue"
            )
        try:
            if ack:
                link.ack(self.channel, self.tag)
            else:
                self.channel.unsettled.discard(self.tag)
                self.channel.basic_reject(self.tag, requeue)
        except FAILURES as exc:
            link.lose(exc)
            raise TransportError(
                f"settling a delivery from {self.queue!r}: {describe(exc)}"
            ) from exc


class PyAmqpSubscription(BufferedSubscription[PyAmqpDelivery]):
    """A consumer on its own channel (QoS = prefetch), consuming again after a reconnect.

    ``serve`` starts the handler in a task of its own for every delivery; iterating buffers
    deliveries instead. After ``cancel`` the channel stays open until every delivery taken
    from it is settled (a delivery can only be acked on its own channel), then it is closed.
    """

    def __init__(
        self,
        queue: str,
        prefetch: int,
        on_closed: Callable[[PyAmqpSubscription], None],
        republish: Callable[[str, amqp.Message], Awaitable[None]],
    ) -> None:
        super().__init__()
        self.queue = queue
        self.prefetch = prefetch
        self._on_closed = on_closed
        self._republish = republish
        self._tag = f"asya-{uuid.uuid4().hex}"
        self.channel: LoopChannel | None = None
        self._link: _Link | None = None
        self._cancel_called = False
        self._closing: asyncio.Future[None] | None = None

    @property
    def active(self) -> bool:
        return not self._cancelled

    async def attach(self, link: _Link) -> None:
        """Open a channel on ``link`` and consume (three round trips, awaited on the loop)."""
        channel = await link.open_channel()
        self._link, self.channel = link, channel
        spec = amqp.spec.Basic
        await link.call(channel, spec.Qos, "lBb", (0, self.prefetch, False), spec.QosOk)
        channel.callbacks[self._tag] = self._on_message
        channel.cancel_callbacks[self._tag] = self._on_broker_cancel
        args = (0, self.queue, self._tag, False, False, False, False, None)
        await link.call(channel, spec.Consume, "BssbbbbF", args, spec.ConsumeOk)
        channel.on_broker_close = self._on_channel_closed

    def _on_channel_closed(self, error: BaseException) -> None:
        self._end(
            TransportError(f"the broker closed the channel consuming {self.queue!r}: {error}")
        )

    def link_lost(self) -> None:
        """Deliveries taken from a lost connection are back in the queue: forget them."""
        for delivery in list(self._unsettled):
            delivery.void = True
        self._unsettled.clear()
        while not self._buffer.empty():
            if self._buffer.get_nowait() is None:
                self._buffer.put_nowait(None)
                break
        self.channel = None
        if self._cancelled and self._closing is None:
            self._closing = asyncio.ensure_future(self.close())

    def _on_message(self, message: amqp.Message) -> None:
        link = self._link
        assert link is not None and self.channel is not None
        delivery = PyAmqpDelivery(self.queue, message, self.channel, link)
        if self._cancelled:
            run_in_background(self._give_back(delivery))
            return
        if delivery.deliveries is None:
            run_in_background(self._recount(delivery))
            return
        self._dispatch(delivery)

    async def _recount(self, delivery: PyAmqpDelivery) -> None:
        """A redelivery on a queue that keeps no count: publish it again with its count raised
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
            await self._give_back(delivery)
            return
        with contextlib.suppress(TransportError):  # a lost ack: the original comes back
            await delivery.ack()

    @staticmethod
    async def _give_back(delivery: PyAmqpDelivery) -> None:
        with contextlib.suppress(TransportError):
            await delivery.nack(requeue=True)

    def _on_broker_cancel(self, consumer_tag: str) -> None:
        self._end(TransportError(f"the broker cancelled the consumer of {self.queue!r}"))

    def end(self, error: TransportError | None = None) -> None:
        self._end(error)

    def _usable(self, delivery: PyAmqpDelivery) -> bool:
        return delivery.link.alive

    def _settled(self, delivery: Delivery) -> None:
        self._unsettled.discard(delivery)
        if self._cancelled and not self._unsettled and self._closing is None:
            self._closing = asyncio.ensure_future(self.close())

    async def cancel(self) -> None:
        if self._cancel_called:
            return
        self._cancel_called = True
        self._cancelled = True
        channel, link = self.channel, self._link
        try:
            if channel is not None and link is not None and link.alive and channel.is_open:
                try:
                    channel.basic_cancel(self._tag, nowait=True)
                except FAILURES as exc:
                    link.lose(exc)
                    raise TransportError(
                        f"cancelling the consumer of {self.queue!r}: {describe(exc)}"
                    ) from exc
        finally:
            await self._give_back_buffered()  # no close() scheduled by _settled for these
            self._end()
            if not self._unsettled:
                await self.close()

    async def close(self) -> None:
        """Stop iteration and close the channel; the broker requeues what is unacked."""
        self._end()
        self._on_closed(self)
        channel, link, self.channel = self.channel, self._link, None
        if channel is not None and link is not None and link.alive:
            try:
                link.write_acks()  # before the close: acks after it would be lost
                channel.close_nowait()
            except FAILURES as exc:
                link.lose(exc)


class PyAmqpTransport(Transport):
    name = "rabbitmq"

    def __init__(self, settings: RabbitMQSettings) -> None:
        self.settings = settings
        self._control = ControlConnection(settings)
        self._link: _Link | None = None
        self._connected = False
        self._closed = False
        self._up = asyncio.Event()
        self._reconnecting: asyncio.Task[None] | None = None
        self._exchange_declared = False
        self._subscriptions: list[PyAmqpSubscription] = []

    @property
    def _target(self) -> str:
        return redact_url(self.settings.url)

    async def connect(self) -> None:
        if self._connected:
            return
        self._closed = False
        with translate(f"connecting to {self._target}"):
            self._link = await self._open_link()
        self._connected = True
        self._up.set()

    async def _open_link(self) -> _Link:
        connection, publisher = await asyncio.to_thread(_open_publishing, self.settings)
        return _Link(connection, publisher, asyncio.get_running_loop(), self._lost)

    def _lost(self, link: _Link, exc: BaseException) -> None:
        if link is not self._link:
            return
        self._up.clear()
        self._exchange_declared = False
        for subscription in list(self._subscriptions):
            subscription.link_lost()
        if self._closed:
            return
        log.warning("connection to %s lost (%s); reconnecting", self._target, describe(exc))
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        backoff = Backoff(self.settings.reconnect_interval, cap=MAX_RECONNECT_PAUSE, factor=1.5)
        while not self._closed:
            try:
                link = await self._open_link()
            except FAILURES as exc:
                pause = backoff.next()
                log.info(
                    "reconnecting to %s failed (%s); next try in %.1f s",
                    self._target,
                    describe(exc),
                    pause,
                )
                await asyncio.sleep(pause)
                continue
            if self._closed:
                link.close()
                await asyncio.to_thread(close_quietly, link.connection)
                return
            self._link = link
            for subscription in list(self._subscriptions):
                if not subscription.active:
                    continue
                try:
                    with translate(f"consuming {subscription.queue!r} again after a reconnect"):
                        await subscription.attach(link)
                except TransportError as exc:
                    subscription.end(exc)
            log.info("reconnected to %s", self._target)
            if link.alive:
                self._up.set()
            return

    def _live_link(self) -> _Link:
        if not self._connected:
            raise TransportError("rabbitmq transport is not connected (call connect() first)")
        link = self._link
        if link is None or not link.alive:
            raise ConnectionLost(f"no connection to {self._target} (reconnecting)")
        return link

    # -- publishing --------------------------------------------------------------------------

    async def publish(self, queue: str, body: bytes, *, delay: float = 0.0) -> None:
        """Publish, retrying with backoff while the broker is unreachable (up to
        ``publish_timeout``); a refusal by the broker is raised at once."""
        deadline = time.monotonic() + self.settings.publish_timeout
        backoff: Backoff | None = None  # made on the first failure: most publishes have none
        while True:
            try:
                await self._publish_once(queue, body, delay, deadline)
                return
            except UnroutableError:
                raise
            except (TransportError, TimeoutError) as exc:
                if not is_outage(exc) and not isinstance(exc, TimeoutError):
                    raise
                backoff = backoff or Backoff(0.1, cap=2.0)
                pause = backoff.next()
                if time.monotonic() + pause >= deadline:
                    raise TransportError(
                        f"could not publish to {queue!r} on {self._target} within "
                        f"{self.settings.publish_timeout:g} s: {describe(exc.__cause__ or exc)}"
                    ) from exc
                log.warning("publish to %r failed (%s); retrying", queue, describe(exc))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._up.wait()
                        await asyncio.sleep(0.05)  # let the consumers re-attach first

    async def _publish_once(self, queue: str, body: bytes, delay: float, deadline: float) -> None:
        link = self._live_link()
        exchange, routing_key = self.settings.exchange, queue
        if not self._exchange_declared:
            await self._declare_exchange()
        if delay > 0:
            routing_key = await self._declare_delay_queue(queue, delay)
            exchange = ""  # the default exchange routes by queue name
            link = self._live_link()
        future = link.publish(exchange, routing_key, body, queue)
        timer = link.loop.call_at(
            link.loop.time() + max(deadline - time.monotonic(), 0.001), _expire, future, queue
        )
        try:
            await future
        finally:
            timer.cancel()

    async def _declare_exchange(self) -> None:
        exchange = self.settings.exchange
        await self._control.run(
            f"declaring exchange {exchange!r}",
            lambda channel: channel.exchange_declare(
                exchange, "topic", durable=True, auto_delete=False
            ),
        )
        self._exchange_declared = True

    async def _declare_delay_queue(self, queue: str, delay: float) -> str:
        """The holding queue (redeclared each time: that restarts its x-expires countdown).

        A delayed message is dead-lettered blind, so a missing target is refused now.
        """
        exchange = self.settings.exchange
        name = delay_queue_name(exchange, queue, delay)
        arguments = delay_queue_arguments(exchange, queue, delay)

        def declare(channel: amqp.Channel) -> None:
            channel.queue_declare(queue, passive=True)
            channel.queue_declare(name, durable=True, auto_delete=False, arguments=arguments)

        try:
            await self._control.run(f"declaring delay queue {name!r}", declare)
        except TransportError as exc:
            if exc.__cause__ is not None and is_not_found(exc.__cause__):
                raise UnroutableError(queue) from exc
            raise
        return name

    # -- consuming ---------------------------------------------------------------------------

    async def consume(self, queue: str, *, prefetch: int = 1) -> Subscription:
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, got {prefetch}")
        try:
            link = self._live_link()
        except ConnectionLost as exc:
            raise TransportError(f"consuming {queue!r}: {exc}") from exc
        subscription = PyAmqpSubscription(queue, prefetch, self._forget, self._republish_recounted)
        try:
            with translate(f"consuming {queue!r}"):
                await subscription.attach(link)
        except TransportError:
            channel = subscription.channel
            if channel is not None and channel.is_open and link.alive:
                with contextlib.suppress(*FAILURES):
                    channel.close_nowait()
            raise
        self._subscriptions.append(subscription)
        return subscription

    async def _republish_recounted(self, queue: str, message: amqp.Message) -> None:
        """Publish ``message`` again, straight to ``queue``, its delivery count raised by one;
        returns once the broker confirmed it (persistent, mandatory)."""
        properties = dict(message.properties)
        properties["application_headers"] = recounted(_headers_of(message))
        what = f"republishing a redelivered message to {queue!r}"
        try:
            link = self._live_link()
        except ConnectionLost as exc:
            raise TransportError(f"{what}: {exc}") from exc
        future = link.publish("", queue, message.body, queue, properties)
        try:
            async with asyncio.timeout(self.settings.publish_timeout):
                await future
        except TimeoutError as exc:
            raise TransportError(
                f"{what}: no confirm within {self.settings.publish_timeout:g} s"
            ) from exc

    def _forget(self, subscription: PyAmqpSubscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)

    # -- control operations (a worker thread) -----------------------------------------------

    def _control_ready(self) -> ControlConnection:
        if not self._connected:
            raise TransportError("rabbitmq transport is not connected (call connect() first)")
        return self._control

    async def declare_queue(self, queue: str) -> None:
        exchange = self.settings.exchange

        def declare(channel: amqp.Channel) -> None:
            channel.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
            channel.queue_declare(queue, durable=True, auto_delete=False)
            channel.queue_bind(queue, exchange, routing_key=queue)

        await self._control_ready().run(f"declaring queue {queue!r}", declare)

    async def depth(self, queue: str) -> int:
        result = await self._control_ready().run(
            f"reading the depth of {queue!r}",
            lambda channel: channel.queue_declare(queue, passive=True),
        )
        return int(result.message_count or 0)

    async def consumers(self, queue: str) -> int | None:
        result = await self._control_ready().run(
            f"reading the consumers of {queue!r}",
            lambda channel: channel.queue_declare(queue, passive=True),
        )
        return int(result.consumer_count or 0)

    async def purge(self, queue: str) -> int:
        def purge(channel: amqp.Channel) -> int:
            channel.queue_declare(queue, passive=True)
            return int(channel.queue_purge(queue) or 0)

        return await self._control_ready().run(f"purging {queue!r}", purge)

    async def delete_queue(self, queue: str) -> None:
        await self._control_ready().run(
            f"deleting {queue!r}", lambda channel: channel.queue_delete(queue)
        )

    async def declare_exchange(self, spec: ExchangeSpec) -> None:
        await self._control_ready().run(
            f"declaring exchange {spec.name!r}",
            lambda channel: _declare_exchange_spec(channel, spec),
        )

    async def declare_queue_spec(self, spec: QueueSpec) -> None:
        await self._control_ready().run(
            f"declaring queue {spec.name!r}",
            lambda channel: channel.queue_declare(
                spec.name,
                durable=spec.durable,
                auto_delete=spec.auto_delete,
                arguments=dict(spec.arguments),
            ),
        )

    async def bind(self, spec: BindingSpec) -> None:
        what = f"binding {spec.destination_type} {spec.destination!r} to {spec.source!r}"

        def bind(channel: amqp.Channel) -> None:
            if spec.destination_type == "exchange":
                channel.exchange_bind(
                    spec.destination, spec.source, spec.routing_key, arguments=dict(spec.arguments)
                )
            else:
                channel.queue_bind(
                    spec.destination, spec.source, spec.routing_key, arguments=dict(spec.arguments)
                )

        await self._control_ready().run(what, bind)

    async def delete_exchange(self) -> None:
        """Remove this transport's exchange (tests and tooling clean up with this)."""
        exchange = self.settings.exchange
        await self._control_ready().run(
            f"deleting exchange {exchange!r}", lambda channel: channel.exchange_delete(exchange)
        )

    async def ping(self) -> None:
        async with asyncio.timeout(self.settings.connect_timeout):
            await self._control_ready().run(f"pinging {self._target}", lambda channel: None)

    async def close(self) -> None:
        if not self._connected:
            return
        self._connected = False
        self._closed = True
        reconnecting, self._reconnecting = self._reconnecting, None
        if reconnecting is not None:
            reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconnecting
        for subscription in list(self._subscriptions):
            await subscription.close()
        self._subscriptions = []
        link, self._link = self._link, None
        self._up.clear()
        self._exchange_declared = False
        if link is not None:
            link.close()
            await asyncio.to_thread(close_quietly, link.connection)
        await asyncio.to_thread(self._control.close)


def _expire(future: asyncio.Future[None], queue: str) -> None:
    if not future.done():
        future.set_exception(TimeoutError(f"no confirm for the publish to {queue!r}"))


def _declare_exchange_spec(channel: amqp.Channel, spec: ExchangeSpec) -> None:
    """exchange_declare with the ``internal`` flag, which py-amqp's helper always leaves off."""
    channel.send_method(
        amqp.spec.Exchange.Declare,
        "BssbbbbbF",
        (
            0,
            spec.name,
            spec.type,
            False,  # passive
            spec.durable,
            spec.auto_delete,
            spec.internal,
            False,  # nowait
            dict(spec.arguments),
        ),
        wait=amqp.spec.Exchange.DeclareOk,
    )
