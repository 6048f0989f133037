"""RabbitMQ-only behaviour: delays held by the broker, and riding out a broker outage.

An outage is simulated with a TCP proxy in front of the shared broker, so other suites using
the machine's RabbitMQ are never disturbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from asya.errors import TransportError
from asya.transports import IncomingMessage, Subscription, Transport
from asya.transports._rabbitmq_common import delay_queue_name
from asya.transports.pyamqp import PyAmqpSubscription
from asya.transports.rabbitmq import RabbitMQSubscription
from tests.helpers import free_port

from .conftest import Backend
from .proxy import BrokerProxy
from .receiver import Receiver

pytestmark = pytest.mark.parametrize("backend", ["rabbitmq", "aio-pika"], indirect=True)


@pytest.fixture
async def proxy() -> AsyncIterator[BrokerProxy]:
    proxy = BrokerProxy()
    await proxy.restore()
    try:
        yield proxy
    finally:
        await proxy.close()


async def via(proxy: BrokerProxy, backend: Backend, **options: object) -> Transport:
    transport = backend.open(proxy.url, reconnect_interval=0.2, **options)
    await transport.connect()
    return transport


async def test_delayed_message_survives_its_publisher_closing(backend: Backend) -> None:
    publisher = await backend.connect()
    queue = await backend.declared(publisher)
    backend.uses_delay(queue, 1.5)
    published_at = time.monotonic()
    await publisher.publish(queue, b"retry me", delay=1.5)
    await publisher.close()  # the sidecar restarts before the retry is due

    fresh = await backend.connect()
    assert await fresh.depth(queue) == 0
    delivery = await Receiver(await fresh.consume(queue)).get(within=15)
    assert delivery.body == b"retry me"
    assert time.monotonic() - published_at >= 1.4
    await delivery.ack()


async def test_published_messages_are_persistent_so_a_broker_restart_keeps_them(
    backend: Backend,
) -> None:
    import aio_pika

    transport = await backend.connect()
    queue = await backend.declared(transport)
    await transport.publish(queue, b"keep me")

    connection = await aio_pika.connect(backend.url)
    try:
        channel = await connection.channel()
        # re-declaring as durable fails (PRECONDITION_FAILED) unless the queue already is
        declared = await channel.declare_queue(queue, durable=True)
        message = await declared.get(timeout=10)
        assert message is not None
        assert message.body == b"keep me"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        await message.ack()
    finally:
        await connection.close()


async def test_delay_queue_is_named_after_target_and_delay(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    backend.uses_delay(queue, 0.25)
    await transport.publish(queue, b"x", delay=0.25)
    # the holding queue exists with the message in it until the TTL moves it on
    holding = delay_queue_name(backend.exchange, queue, 0.25)
    assert holding == f"asya-delay.{backend.exchange}.{queue}.250"
    delivery = await Receiver(await transport.consume(queue)).get(within=10)
    await delivery.ack()
    assert await transport.depth(holding) == 0


async def test_consumer_resumes_by_itself_after_the_connection_drops(
    backend: Backend, proxy: BrokerProxy
) -> None:
    consumer = await via(proxy, backend)
    queue = await backend.declared(consumer)
    direct = await backend.connect()
    receiver = Receiver(await consumer.consume(queue))
    await direct.publish(queue, b"before")
    await (await receiver.get()).ack()

    await proxy.outage()
    await asyncio.sleep(0.5)
    await proxy.restore()
    await direct.publish(queue, b"after")

    # an ack still in flight when the connection dropped is lost, so "before" may come again
    delivery = await receiver.get(within=20)
    while delivery.body == b"before":
        assert delivery.redelivered is True
        await delivery.ack()
        delivery = await receiver.get(within=20)
    assert delivery.body == b"after"
    await delivery.ack()


async def test_publish_during_an_outage_waits_for_the_broker(
    backend: Backend, proxy: BrokerProxy
) -> None:
    publisher = await via(proxy, backend, publish_timeout=20)
    queue = await backend.declared(publisher)
    await proxy.outage()
    publishing = asyncio.ensure_future(publisher.publish(queue, b"patient"))
    await asyncio.sleep(1.0)
    assert not publishing.done()
    await proxy.restore()

    await asyncio.wait_for(publishing, 20)
    direct = await backend.connect()
    assert await direct.depth(queue) == 1


async def test_publish_gives_up_with_transport_error_after_its_timeout(
    backend: Backend, proxy: BrokerProxy
) -> None:
    publisher = await via(proxy, backend, publish_timeout=1)
    queue = await backend.declared(publisher)
    await proxy.outage()
    started = time.monotonic()
    with pytest.raises(TransportError, match=queue):
        await publisher.publish(queue, b"impatient")
    assert time.monotonic() - started < 5


async def test_unreachable_broker_raises_transport_error_without_the_password(
    backend: Backend,
) -> None:
    url = f"amqp://guest:s3cret@127.0.0.1:{free_port()}/"
    transport = backend.open(url, connect_timeout=2)
    with pytest.raises(TransportError) as raised:
        await transport.connect()
    assert "s3cret" not in str(raised.value)
    with pytest.raises(TransportError):
        await transport.publish("anything", b"x")


def channel_is_open(subscription: Subscription) -> bool:
    if isinstance(subscription, RabbitMQSubscription):
        return not subscription.channel.is_closed
    assert isinstance(subscription, PyAmqpSubscription)
    return subscription.channel is not None and subscription.channel.is_open


async def test_cancelled_consumer_closes_its_channel_once_its_deliveries_are_settled(
    backend: Backend,
) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    await transport.publish(queue, b"held")
    subscription = await transport.consume(queue)
    held = await Receiver(subscription).get()

    await subscription.cancel()
    assert channel_is_open(subscription)  # the held delivery can still be acked on it
    await held.ack()
    await asyncio.sleep(0.2)
    assert not channel_is_open(subscription)
    assert await transport.depth(queue) == 0


async def test_serving_resumes_by_itself_after_the_connection_drops(
    backend: Backend, proxy: BrokerProxy
) -> None:
    consumer = await via(proxy, backend)
    queue = await backend.declared(consumer)
    direct = await backend.connect()
    subscription = await consumer.consume(queue, prefetch=5)
    handled: asyncio.Queue[bytes] = asyncio.Queue()

    async def handler(delivery: IncomingMessage) -> None:
        with contextlib.suppress(TransportError):  # an ack on the dropped channel is lost
            await delivery.ack()
        handled.put_nowait(delivery.body)

    serving = asyncio.create_task(subscription.serve(handler))
    await direct.publish(queue, b"before")
    assert await asyncio.wait_for(handled.get(), 10) == b"before"

    await proxy.outage()
    await asyncio.sleep(0.5)
    await proxy.restore()
    await direct.publish(queue, b"after")

    body = await asyncio.wait_for(handled.get(), 20)
    while body == b"before":  # redelivered: its ack may have been lost with the connection
        body = await asyncio.wait_for(handled.get(), 20)
    assert body == b"after"
    assert not serving.done()
    await subscription.cancel()
    await asyncio.wait_for(serving, 5)


async def test_serve_raises_transport_error_when_the_broker_cancels_the_consumer(
    backend: Backend,
) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    subscription = await transport.consume(queue)

    async def handler(delivery: IncomingMessage) -> None:
        await delivery.ack()

    serving = asyncio.create_task(subscription.serve(handler))
    await asyncio.sleep(0.2)
    await (await backend.connect()).delete_queue(queue)  # the broker cancels its consumers

    with pytest.raises(TransportError, match="cancelled the consumer"):
        await asyncio.wait_for(serving, 10)
    await subscription.cancel()
