"""NATS JetStream transport on nats-py (docs/reference/transports.md#nats).

Topology: one stream per exchange (the Asya namespace prefix), with work-queue retention and
file storage; each Asya queue is the subject ``<exchange>.<queue>`` in that stream's subject
list, read by one durable pull consumer (explicit acks) that every replica of the actor shares.
Publishing to a subject no stream lists gets "no responders" back: :class:`UnroutableError`.

Deliveries are pulled, never pushed: a subscription asks for at most ``prefetch`` minus what it
holds, so a slow replica does not hoard messages. While a delivery is held, the subscription
sends in-progress acks every third of the ack wait, so the server redelivers it only if its
consumer dies (then after ``ack_wait``). A delayed publish carries an ``Asya-Not-Before`` header
and is stored at once; a consumer that receives it early naks it with the remaining delay, so
the retry lives in the stream and survives any process restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from asya.backoff import Backoff
from asya.errors import TransportError, UnroutableError, describe
from asya.transports import redact_url
from asya.transports._buffered import BufferedSubscription
from asya.transports.base import Subscription, Transport, run_in_background
from asya.transports.delivery import Delivery
from asya.transports.nats_names import consumer_name, stream_name

log = logging.getLogger(__name__)

NOT_BEFORE_HEADER = "Asya-Not-Before"
_API = "$JS.API"
_REQUEST_GRACE = 2.0  # a pull request with no answer this long after it expired is dropped


@dataclass(frozen=True)
class NatsSettings:
    url: str
    exchange: str = "asya"
    ack_wait: float = 30.0
    publish_timeout: float = 30.0
    connect_timeout: float = 10.0
    reconnect_interval: float = 1.0
    pull_expires: float = 5.0


def _check_token(what: str, name: str) -> None:
    if not name or any(c in name for c in " \t\r\n*>") or name.startswith(".") or ".." in name:
        raise ValueError(f"{what} {name!r} cannot be part of a NATS subject")


_FAILURES: tuple[type[BaseException], ...] = (nats.errors.Error, OSError, TimeoutError)
# Failures that mean "the server is not there right now" (worth retrying a publish).
_OUTAGES: tuple[type[BaseException], ...] = (
    nats.errors.TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.ServiceUnavailableError,
    OSError,
    TimeoutError,
)


@contextlib.contextmanager
def translate(what: str) -> Iterator[None]:
    """Turn nats-py and socket failures into TransportError naming the operation."""
    try:
        yield
    except (TransportError, asyncio.CancelledError):
        raise
    except _FAILURES as exc:
        raise TransportError(f"{what}: {describe(exc)}") from exc


class NatsDelivery(Delivery):
    """A JetStream message; ack removes it, nack naks (requeue) or terms it (drop)."""

    def __init__(self, msg: Msg, queue: str, *, deferred: int = 0) -> None:
        # a delayed message deferred early (nak with delay) was not really delivered then
        deliveries = msg.metadata.num_delivered - deferred
        super().__init__(queue, msg.data, redelivered=deliveries > 1, deliveries=deliveries)
        self.msg = msg

    async def _settle(self, *, ack: bool, requeue: bool) -> None:
        with translate(f"settling a delivery from {self.queue!r}"):
            if ack:
                await self.msg.ack()
            elif requeue:
                await self.msg.nak()
            else:
                await self.msg.term()


def _not_before(msg: Msg) -> float:
    raw = (msg.headers or {}).get(NOT_BEFORE_HEADER)
    try:
        return float(raw) if raw else 0.0
    except ValueError:
        return 0.0


class NatsSubscription(BufferedSubscription[NatsDelivery]):
    """Pulls from one durable consumer into a private inbox, ``prefetch`` at most in hand.

    Each pull request has its own reply subject (``<inbox>.<n>``) so its end (the server's 408
    when it expires) is known; messages count against the oldest open request. A message
    arriving after ``cancel`` is nak'd back at once.
    """

    def __init__(self, transport: NatsTransport, queue: str, consumer: str, prefetch: int) -> None:
        super().__init__()
        self.transport = transport
        self.queue = queue
        self.prefetch = prefetch
        self._next_subject = f"{_API}.CONSUMER.MSG.NEXT.{transport.stream}.{consumer}"
        self._inbox = ""
        self._sub: Any = None
        self._requests: dict[str, tuple[int, float]] = {}  # reply subject -> (left, deadline)
        self._ids = itertools.count()
        self._ticker: asyncio.Task[None] | None = None
        self._deferrals: dict[int, int] = {}  # stream sequence -> times this one deferred it

    @property
    def _nc(self) -> Client:
        return self.transport.client()

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_msg)
        self._ticker = asyncio.create_task(self._tick())
        await self.pull()

    # -- pulling -----------------------------------------------------------------------------

    def _room(self) -> int:
        outstanding = sum(left for left, _ in self._requests.values())
        return self.prefetch - len(self._unsettled) - outstanding

    async def pull(self) -> None:
        """Ask the server for as many messages as there is room for."""
        room = self._room()
        if self._cancelled or room <= 0 or not self._nc.is_connected:
            return
        expires = self.transport.settings.pull_expires
        reply = f"{self._inbox}.{next(self._ids)}"
        self._requests[reply] = (room, time.monotonic() + expires + _REQUEST_GRACE)
        request = f'{{"batch":{room},"expires":{int(expires * 1e9)}}}'.encode()
        try:
            await self._nc.publish(self._next_subject, request, reply=reply)
        except _FAILURES as exc:
            self._requests.pop(reply, None)
            log.warning("pulling from %r failed (%s); trying again", self.queue, describe(exc))

    def reset_requests(self) -> None:
        """The connection came back: requests sent before are gone with the old one."""
        self._requests.clear()
        run_in_background(self.pull())

    async def _tick(self) -> None:
        """Keep held deliveries in progress and drop pull requests that never ended."""
        interval = max(self.transport.settings.ack_wait / 3, 0.05)
        last_progress = time.monotonic()
        while True:
            await asyncio.sleep(min(interval, 1.0))
            now = time.monotonic()
            stale = [reply for reply, (_, deadline) in self._requests.items() if deadline < now]
            for reply in stale:
                del self._requests[reply]
            if stale or (self._room() > 0 and not self._requests):
                await self.pull()
            if now - last_progress >= interval and self._nc.is_connected:
                last_progress = now
                for delivery in list(self._unsettled):
                    if not delivery.settled:
                        with contextlib.suppress(*_FAILURES):
                            await delivery.msg.in_progress()

    async def _on_msg(self, msg: Msg) -> None:
        status = (msg.headers or {}).get("Status")
        if status:
            if status == "100":  # idle heartbeat
                return
            self._requests.pop(msg.subject, None)
            if self._cancelled:
                if not self._requests:  # not from inside the callback: that ends its task
                    run_in_background(self._unsubscribe())
                return
            if status == "409" and "deleted" in (msg.headers or {}).get("Description", "").lower():
                self._end(TransportError(f"the consumer of {self.queue!r} was deleted"))
                return
            await self.pull()
            return
        self._count_against_oldest_request()
        if self._cancelled:
            with contextlib.suppress(*_FAILURES):
                await msg.nak()
            return
        wait = _not_before(msg) - time.time()
        sequence = msg.metadata.sequence.stream
        if wait > 0.005:
            with contextlib.suppress(*_FAILURES):
                await msg.nak(delay=wait)
                self._deferrals[sequence] = self._deferrals.get(sequence, 0) + 1
            await self.pull()
            return
        delivery = NatsDelivery(msg, self.queue, deferred=self._deferrals.pop(sequence, 0))
        self._dispatch(delivery)

    def _count_against_oldest_request(self) -> None:
        """A message arrives under its own subject, not the request's reply subject; the
        server serves one consumer's waiting requests in order, so it answers the oldest."""
        for reply, (left, deadline) in self._requests.items():
            if left <= 1:
                del self._requests[reply]
            else:
                self._requests[reply] = (left - 1, deadline)
            return

    def _settled(self, delivery: Delivery) -> None:
        assert isinstance(delivery, NatsDelivery)
        self._unsettled.discard(delivery)
        if not self._cancelled:
            run_in_background(self.pull())
        elif not self._unsettled and self._sub is None and self._ticker is not None:
            self._ticker.cancel()

    # -- protocol ----------------------------------------------------------------------------

    async def cancel(self) -> None:
        """Stop pulling; buffered deliveries go back now, held ones can still be settled."""
        if self._cancelled and self._ended.is_set() and self._buffer.empty():
            return
        self._cancelled = True
        await self._give_back_buffered()
        self._end()
        if not self._requests:
            await self._unsubscribe()
        else:  # late answers to open requests are nak'd by _on_msg until they end
            run_in_background(self._unsubscribe_when_answered())

    async def _unsubscribe_when_answered(self) -> None:
        """Fallback for open requests whose end never arrives (``_on_msg`` usually wins)."""
        await asyncio.sleep(self.transport.settings.pull_expires + _REQUEST_GRACE)
        self._requests.clear()
        await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        if not self._unsettled and self._ticker is not None:
            self._ticker.cancel()
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(*_FAILURES):
                await sub.unsubscribe()

    async def shutdown(self) -> None:
        """The transport is closing: give back everything held, then stop."""
        await self.cancel()
        if self._ticker is not None:
            self._ticker.cancel()
        for delivery in list(self._unsettled):
            if not delivery.settled:
                with contextlib.suppress(*_FAILURES):
                    await delivery.msg.nak()
            delivery.void = True
        self._unsettled.clear()
        self._requests.clear()
        await self._unsubscribe()


class NatsTransport(Transport):
    name = "nats"

    def __init__(self, settings: NatsSettings) -> None:
        _check_token("exchange", settings.exchange)
        self.settings = settings
        self.stream = stream_name(settings.exchange)
        self._nc: Client | None = None
        self._subscriptions: list[NatsSubscription] = []

    @property
    def _target(self) -> str:
        return redact_url(self.settings.url)

    def client(self) -> Client:
        if self._nc is None or self._nc.is_closed:
            raise TransportError("nats transport is not connected (call connect() first)")
        return self._nc

    def subject(self, queue: str) -> str:
        _check_token("queue name", queue)
        return f"{self.settings.exchange}.{queue}"

    @staticmethod
    def consumer(queue: str) -> str:
        return consumer_name(queue)

    async def connect(self) -> None:
        if self._nc is not None:
            return
        settings = self.settings

        async def on_error(exc: Exception) -> None:
            log.warning("nats %s: %s", self._target, describe(exc))

        async def on_reconnect() -> None:
            log.info("reconnected to %s", self._target)
            for subscription in self._subscriptions:
                subscription.reset_requests()

        with translate(f"connecting to {self._target}"):
            async with asyncio.timeout(settings.connect_timeout):
                self._nc = await nats.connect(
                    settings.url,
                    connect_timeout=max(1, round(settings.connect_timeout)),
                    reconnect_time_wait=settings.reconnect_interval,
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    error_cb=on_error,
                    reconnected_cb=on_reconnect,
                )

    async def _api(self, what: str, subject: str, request: dict[str, Any]) -> dict[str, Any]:
        """One JetStream API call; an error answer raises TransportError with its text."""
        import orjson

        with translate(what):
            reply = await self.client().request(
                f"{_API}.{subject}", orjson.dumps(request), timeout=self.settings.connect_timeout
            )
        answer: dict[str, Any] = orjson.loads(reply.data)
        error = answer.get("error")
        if error:
            raise _APIRefusal(f"{what}: {error.get('description', error)}", error.get("code"))
        return answer

    async def _stream_info(self) -> dict[str, Any] | None:
        try:
            return await self._api(
                f"reading stream {self.stream!r}", f"STREAM.INFO.{self.stream}", {}
            )
        except _APIRefusal as exc:
            if exc.code == 404:
                return None
            raise

    async def _set_subjects(self, add: str | None = None, remove: str | None = None) -> None:
        """Add or remove one subject of the stream, creating or deleting the stream as needed.

        Read-modify-write: re-read until the change shows, in case another process changed
        the list at the same time (declaring at startup is the usual case).
        """
        for _ in range(5):
            info = await self._stream_info()
            subjects: list[str] = list(info["config"]["subjects"]) if info else []
            if (add is None or add in subjects) and (remove is None or remove not in subjects):
                return
            if add is not None:
                subjects.append(add)
            if remove is not None and remove in subjects:
                subjects.remove(remove)
            config = {
                "name": self.stream,
                "subjects": subjects,
                "retention": "workqueue",
                "storage": "file",
                "duplicate_window": int(120e9),
            }
            what = f"updating stream {self.stream!r}"
            try:
                if info is None:
                    await self._api(what, f"STREAM.CREATE.{self.stream}", config)
                elif not subjects:
                    await self._api(what, f"STREAM.DELETE.{self.stream}", {})
                else:
                    await self._api(
                        what, f"STREAM.UPDATE.{self.stream}", {**info["config"], **config}
                    )
            except _APIRefusal as exc:
                log.debug("%s; trying again", exc)
            await asyncio.sleep(0.01)
        raise TransportError(f"could not update the subjects of stream {self.stream!r}")

    async def declare_queue(self, queue: str) -> None:
        subject = self.subject(queue)
        await self._set_subjects(add=subject)
        durable = self.consumer(queue)
        config = {
            "durable_name": durable,
            "filter_subject": subject,
            "ack_policy": "explicit",
            "ack_wait": int(self.settings.ack_wait * 1e9),
            "deliver_policy": "all",
            "max_deliver": -1,
            "max_ack_pending": -1,
        }
        await self._api(
            f"declaring queue {queue!r}",
            f"CONSUMER.DURABLE.CREATE.{self.stream}.{durable}",
            {"stream_name": self.stream, "config": config},
        )

    async def _consumer_info(self, queue: str, what: str) -> dict[str, Any]:
        try:
            return await self._api(
                f"{what} {queue!r}", f"CONSUMER.INFO.{self.stream}.{self.consumer(queue)}", {}
            )
        except _APIRefusal as exc:
            if exc.code == 404:
                raise TransportError(f"{what} {queue!r}: no such queue") from exc
            raise

    async def publish(self, queue: str, body: bytes, *, delay: float = 0.0) -> None:
        """Publish with a JetStream ack, retrying through an outage for ``publish_timeout``.

        Every try carries the same message id, so a try whose ack was lost is stored once.
        """
        subject = self.subject(queue)
        headers = {"Nats-Msg-Id": uuid.uuid4().hex}
        if delay > 0:
            headers[NOT_BEFORE_HEADER] = f"{time.time() + delay:.3f}"
        deadline = time.monotonic() + self.settings.publish_timeout
        backoff = Backoff(0.1, cap=2.0)
        while True:
            try:
                await self._publish_once(queue, subject, body, headers, deadline)
                return
            except _OUTAGES as exc:
                pause = backoff.next()
                if time.monotonic() + pause >= deadline:
                    raise TransportError(
                        f"could not publish to {queue!r} on {self._target} within "
                        f"{self.settings.publish_timeout:g} s: {describe(exc)}"
                    ) from exc
                log.warning("publish to %r failed (%s); retrying", queue, describe(exc))
                await asyncio.sleep(pause)

    async def _publish_once(
        self, queue: str, subject: str, body: bytes, headers: dict[str, str], deadline: float
    ) -> None:
        import orjson

        timeout = max(min(deadline - time.monotonic(), 5.0), 0.05)
        try:
            reply = await self.client().request(subject, body, timeout=timeout, headers=headers)
        except nats.errors.NoRespondersError as exc:
            raise UnroutableError(queue) from exc
        answer = orjson.loads(reply.data) if reply.data else {}
        error = answer.get("error") if isinstance(answer, dict) else None
        if error:
            raise TransportError(
                f"the server refused the message for {queue!r}: {error.get('description', error)}"
            )

    async def consume(self, queue: str, *, prefetch: int = 1) -> Subscription:
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, got {prefetch}")
        await self._consumer_info(queue, "consuming")
        subscription = NatsSubscription(self, queue, self.consumer(queue), prefetch)
        with translate(f"consuming {queue!r}"):
            await subscription.start()
        self._subscriptions.append(subscription)
        return subscription

    async def depth(self, queue: str) -> int:
        """Messages the queue's consumer has not delivered yet (its ``num_pending``)."""
        info = await self._consumer_info(queue, "reading the depth of")
        return int(info.get("num_pending", 0))

    async def purge(self, queue: str) -> int:
        await self._consumer_info(queue, "purging")
        answer = await self._api(
            f"purging {queue!r}", f"STREAM.PURGE.{self.stream}", {"filter": self.subject(queue)}
        )
        return int(answer.get("purged", 0))

    async def delete_queue(self, queue: str) -> None:
        subject = self.subject(queue)
        if await self._stream_info() is None:
            return
        with contextlib.suppress(_APIRefusal):
            await self._api(
                f"deleting queue {queue!r}",
                f"CONSUMER.DELETE.{self.stream}.{self.consumer(queue)}",
                {},
            )
        with contextlib.suppress(_APIRefusal):
            await self._api(
                f"purging {queue!r}", f"STREAM.PURGE.{self.stream}", {"filter": subject}
            )
        await self._set_subjects(remove=subject)

    async def delete_stream(self) -> None:
        """Remove this transport's stream and every queue in it (tests and tooling)."""
        with contextlib.suppress(_APIRefusal):
            await self._api(f"deleting stream {self.stream!r}", f"STREAM.DELETE.{self.stream}", {})

    async def ping(self) -> None:
        with translate(f"pinging {self._target}"):
            await self.client().flush(timeout=max(1, round(self.settings.connect_timeout)))

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        if nc is None:
            return
        subscriptions, self._subscriptions = self._subscriptions, []
        self._nc = nc  # subscriptions still nak through it
        try:
            for subscription in subscriptions:
                await subscription.shutdown()
            with contextlib.suppress(*_FAILURES):
                await nc.flush(timeout=2)
        finally:
            self._nc = None
            with contextlib.suppress(*_FAILURES):
                await nc.close()


class _APIRefusal(TransportError):
    """The JetStream API answered with an error (``code`` is its HTTP-like status)."""

    def __init__(self, message: str, code: int | None) -> None:
        super().__init__(message)
        self.code = code
