"""Amazon SQS transport (docs/reference/transports.md#sqs).

Each Asya queue is one standard SQS queue named ``prefix + queue``. The contract maps onto SQS
like this:

* consume = long polling (``WaitTimeSeconds``); a received message is invisible to others for
  ``visibility`` seconds, and a heartbeat extends that every third of it while the delivery is
  unsettled, so a message that runs long is not handed to a second consumer. A consumer that
  dies stops the heartbeat: the message comes back once its visibility ends (``redelivered``
  from ``ApproximateReceiveCount``).
* ack and ``nack(requeue=False)`` delete the message; ``nack(requeue=True)`` sets its
  visibility to 0.
* ``publish(delay=s)`` uses ``DelaySeconds`` (whole seconds, rounded up). SQS stops at
  15 minutes; a longer delay is sent with 15 minutes and the end time in a message attribute,
  and whoever receives it early sends it on with the rest of the delay.
* A message over ``max_message_size`` (256 KiB unless told) raises
  :class:`~asya.errors.MessageTooLargeError` before anything is sent.
* A queue that does not exist raises :class:`~asya.errors.UnroutableError`.

Standard queues do not promise order and may, rarely, deliver a message twice: delivery is
at-least-once, as everywhere in Asya.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from asya.backoff import backoff_delay
from asya.errors import MessageTooLargeError, TransportError, UnroutableError
from asya.transports._polling import PollingSubscription
from asya.transports._sqs_api import (
    DELIVER_AT_ATTRIBUTE,
    SqsApi,
    StaleReceipt,
    decode_body,
    encode_body,
    message_size,
)
from asya.transports.base import Subscription, Transport
from asya.transports.delivery import Delivery

log = logging.getLogger(__name__)

MAX_DELAY = 900  # SQS's longest DelaySeconds
_BATCH = 10  # SQS's most messages per receive or batch call
_RECEIVE_SYSTEM_ATTRIBUTES = ["ApproximateReceiveCount"]
_EARLY_ENOUGH = 0.25  # seconds early a long-delayed message may be handed out (clock skew)


@dataclass(frozen=True)
class SqsSettings:
    """From the URL query (``sqs://?prefix=asya-&region=eu-west-1&wait=20s``) or options.

    ``region`` and ``endpoint`` left unset are read by boto3 from the standard AWS variables
    (``AWS_REGION``, ``AWS_ENDPOINT_URL``, credentials), as is everything else about AWS.
    """

    prefix: str = ""
    region: str | None = None
    endpoint: str | None = None
    wait: float = 5.0
    visibility: float = 30.0
    max_message_size: int = 262_144
    threads: int = 16

    def __post_init__(self) -> None:
        if not 0 <= self.wait <= 20:
            raise ValueError(
                f"wait must be between 0 and 20 seconds (SQS's limit), got {self.wait}"
            )
        if not 1 <= self.visibility <= 43_200:
            raise ValueError(f"visibility must be between 1 s and 12 h, got {self.visibility}")
        if not 1024 <= self.max_message_size <= 1_048_576:
            raise ValueError(
                f"max_message_size must be between 1024 and 1048576 bytes, got "
                f"{self.max_message_size}"
            )
        if self.threads < 2:
            raise ValueError(f"threads must be at least 2, got {self.threads}")


def delay_seconds(delay: float) -> int:
    """SQS's whole-second DelaySeconds for a delay (rounded up, capped at 15 minutes)."""
    if delay <= 0:
        return 0
    return min(math.ceil(round(delay, 3)), MAX_DELAY)


class SqsDelivery(Delivery):
    def __init__(self, transport: SqsTransport, queue: str, message: dict[str, Any]) -> None:
        received = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        super().__init__(queue, decode_body(message), redelivered=received > 1, deliveries=received)
        self.receipt: str = message["ReceiptHandle"]
        self.message_id: str = message.get("MessageId", "?")
        self._transport = transport

    async def _settle(self, *, ack: bool, requeue: bool) -> None:
        api, queue = self._transport.api, self.queue
        what = f"settling message {self.message_id} of {queue!r}"
        try:
            if ack or not requeue:
                await api.on_queue(queue, "delete_message", what, ReceiptHandle=self.receipt)
            else:
                await api.on_queue(
                    queue,
                    "change_message_visibility",
                    what,
                    ReceiptHandle=self.receipt,
                    VisibilityTimeout=0,
                )
        except StaleReceipt as exc:
            self.void = True
            raise TransportError(
                f"message {self.message_id} of {queue!r} is no longer ours (its visibility "
                "timeout ended): it will be processed again"
            ) from exc


class SqsSubscription(PollingSubscription):
    def __init__(self, transport: SqsTransport, queue: str, prefetch: int) -> None:
        super().__init__(queue, prefetch)
        self._transport = transport

    async def take(self, limit: int) -> list[Delivery]:
        transport, settings = self._transport, self._transport.settings
        answer = await transport.api.on_queue(
            self.queue,
            "receive_message",
            f"receiving from {self.queue!r}",
            MaxNumberOfMessages=min(limit, _BATCH),
            WaitTimeSeconds=int(settings.wait),
            VisibilityTimeout=int(settings.visibility),
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=_RECEIVE_SYSTEM_ATTRIBUTES,
        )
        deliveries: list[Delivery] = []
        for message in answer.get("Messages", []):
            if not await transport.pass_on_if_early(self.queue, message):
                deliveries.append(SqsDelivery(transport, self.queue, message))
        return deliveries

    async def release(self, deliveries: list[Delivery]) -> None:
        receipts = [d.receipt for d in deliveries if isinstance(d, SqsDelivery)]
        try:
            await self._transport.set_visibility(self.queue, receipts, 0)
        except TransportError as exc:  # they come back when their visibility ends anyway
            log.warning(
                "could not give %d message(s) back to %r: %s", len(receipts), self.queue, exc
            )

    def idle_timeout(self, idle_rounds: int) -> float:
        if int(self._transport.settings.wait) > 0:
            return 0.0  # the long poll itself was the wait (SQS counts it in whole seconds)
        return backoff_delay(idle_rounds, first=0.05, cap=1.0)


class SqsTransport(Transport):
    """A Transport on Amazon SQS; ``exchange`` is accepted but has no meaning here."""

    name = "sqs"

    def __init__(self, settings: SqsSettings) -> None:
        self.settings = settings
        self.api = SqsApi(
            region=settings.region,
            endpoint=settings.endpoint,
            threads=settings.threads,
            prefix=settings.prefix,
        )
        self._subscriptions: set[SqsSubscription] = set()
        self._heartbeat: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        if self.api.open:
            return
        await self.api.start()
        self._heartbeat = asyncio.create_task(self._extend_visibility(), name="asya-sqs-heartbeat")

    async def declare_queue(self, queue: str) -> None:
        answer = await self.api.call(
            "create_queue", f"declaring queue {queue!r}", QueueName=self.api.name_of(queue)
        )
        self.api.remember(queue, answer["QueueUrl"])

    async def publish(self, queue: str, body: bytes, *, delay: float = 0.0) -> None:
        text, attributes = encode_body(body)
        if delay > MAX_DELAY:
            attributes[DELIVER_AT_ATTRIBUTE] = {
                "DataType": "Number",
                "StringValue": f"{time.time() + delay:.3f}",
            }
        await self._send(queue, text, attributes, delay_seconds(delay))

    async def _send(self, queue: str, text: str, attributes: dict[str, Any], delay: int) -> None:
        size = message_size(text, attributes)
        if size > self.settings.max_message_size:
            raise MessageTooLargeError(queue, size, self.settings.max_message_size)
        params: dict[str, Any] = {"MessageBody": text, "DelaySeconds": delay}
        if attributes:
            params["MessageAttributes"] = attributes
        await self.api.on_queue(queue, "send_message", f"publishing to {queue!r}", **params)

    async def pass_on_if_early(self, queue: str, message: dict[str, Any]) -> bool:
        """Send a message whose long delay has not ended on with the rest of it; True if so."""
        attributes: dict[str, Any] = message.get("MessageAttributes", {})
        deliver_at = attributes.get(DELIVER_AT_ATTRIBUTE, {}).get("StringValue")
        if deliver_at is None:
            return False
        remaining = float(deliver_at) - time.time()
        if remaining <= _EARLY_ENOUGH:
            return False
        kept = {
            name: {"DataType": value["DataType"], "StringValue": value["StringValue"]}
            for name, value in attributes.items()
            if "StringValue" in value
        }
        await self._send(queue, message["Body"], kept, delay_seconds(remaining))
        await self.api.on_queue(
            queue, "delete_message", f"passing on a delayed message of {queue!r}",
            ReceiptHandle=message["ReceiptHandle"],
        )  # fmt: skip
        return True

    async def consume(self, queue: str, *, prefetch: int = 1) -> Subscription:
        await self.api.url(queue)
        subscription = SqsSubscription(self, queue, prefetch)
        self._subscriptions = {s for s in self._subscriptions if not s.finished}
        self._subscriptions.add(subscription)
        return subscription

    async def depth(self, queue: str) -> int:
        answer = await self.api.on_queue(
            queue,
            "get_queue_attributes",
            f"reading the depth of {queue!r}",
            AttributeNames=["ApproximateNumberOfMessages"],
        )
        return int(answer["Attributes"]["ApproximateNumberOfMessages"])

    async def purge(self, queue: str) -> int:
        """Receive and delete ready messages until none come (not SQS's PurgeQueue: that also
        drops in-flight messages, may run only once a minute and can take a minute to end)."""
        dropped = 0
        while True:
            answer = await self.api.on_queue(
                queue,
                "receive_message",
                f"purging {queue!r}",
                MaxNumberOfMessages=_BATCH,
                WaitTimeSeconds=0,
                VisibilityTimeout=int(self.settings.visibility),
            )
            messages = answer.get("Messages", [])
            if not messages:
                return dropped
            await self.api.on_queue(
                queue,
                "delete_message_batch",
                f"purging {queue!r}",
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
            dropped += len(messages)

    async def delete_queue(self, queue: str) -> None:
        for subscription in self._subscriptions:
            if subscription.queue == queue:
                await subscription.cancel()
        with contextlib.suppress(UnroutableError):
            await self.api.on_queue(queue, "delete_queue", f"deleting queue {queue!r}")
        self.api.forget(queue)

    async def ping(self) -> None:
        """One cheap call (needs ``sqs:ListQueues``): are the endpoint and credentials good?"""
        params: dict[str, Any] = {"MaxResults": 1}
        if self.settings.prefix:
            params["QueueNamePrefix"] = self.settings.prefix
        await self.api.call("list_queues", "asking SQS for its queues", **params)

    async def set_visibility(self, queue: str, receipts: list[str], seconds: int) -> list[str]:
        """Set the visibility of received messages; returns the receipts SQS refused."""
        refused: list[str] = []
        for start in range(0, len(receipts), _BATCH):
            chunk = receipts[start : start + _BATCH]
            answer = await self.api.on_queue(
                queue,
                "change_message_visibility_batch",
                f"changing visibility in {queue!r}",
                Entries=[
                    {"Id": str(i), "ReceiptHandle": receipt, "VisibilityTimeout": seconds}
                    for i, receipt in enumerate(chunk)
                ],
            )
            refused += [chunk[int(failed["Id"])] for failed in answer.get("Failed", [])]
        return refused

    async def _extend_visibility(self) -> None:
        """The heartbeat: every third of the visibility timeout, extend it for every delivery
        still unsettled, so only a dead consumer's messages come back."""
        seconds = int(self.settings.visibility)
        while True:
            await asyncio.sleep(seconds / 3)
            for subscription in list(self._subscriptions):
                held = [d for d in subscription.unsettled if isinstance(d, SqsDelivery)]
                if not held:
                    continue
                try:
                    refused = await self.set_visibility(
                        subscription.queue, [d.receipt for d in held], seconds
                    )
                except TransportError as exc:  # never let the loop die; try again next beat
                    log.warning("could not extend visibility in %r: %s", subscription.queue, exc)
                    continue
                for delivery in held:
                    if delivery.receipt in refused:
                        log.warning(
                            "message %s of %r was no longer ours when its visibility was "
                            "extended: it will be processed again",
                            delivery.message_id,
                            delivery.queue,
                        )
                        delivery.void = True
                        subscription.unsettled.discard(delivery)
                        subscription.wake()

    async def close(self) -> None:
        if not self.api.open:
            return
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        try:
            for subscription in self._subscriptions:
                await subscription.shutdown()
        finally:
            self._subscriptions.clear()
            await self.api.stop()
