"""The delivery count (docs/reference/transports.md#delivery-count) on every backend, and on
RabbitMQ both queue types: classic (the consumer's own header) and quorum (the broker's)."""

from __future__ import annotations

from typing import Any

import pytest

from asya.transports.base import IncomingMessage
from asya.transports.delivery_count import COUNT_HEADER
from asya.transports.pyamqp import PyAmqpDelivery, PyAmqpTransport
from asya.transports.rabbitmq import RabbitMQDelivery, RabbitMQTransport
from asya.transports.topology import BindingSpec, QueueSpec

from .conftest import Backend
from .receiver import Receiver


async def test_every_delivery_is_counted_across_requeues_and_consumer_deaths(
    backend: Backend,
) -> None:
    producer = await backend.connect()
    queue = await backend.declared(producer)
    await producer.publish(queue, b"counted")
    seen = []

    consumer = await backend.connect()
    receiver = Receiver(await consumer.consume(queue))
    for _ in range(2):
        delivery = await receiver.get(within=15)
        seen.append((delivery.deliveries, delivery.redelivered))
        await delivery.nack(requeue=True)
    await receiver.get(within=15)  # the third, then the consumer goes away unsettled
    await consumer.close()

    last = await Receiver(await producer.consume(queue)).get(within=15)
    seen.append((last.deliveries, last.redelivered))
    assert last.body == b"counted"
    assert seen == [(1, False), (2, True), (4, True)]
    await last.ack()
    assert await producer.depth(queue) == 0


def _headers(delivery: IncomingMessage) -> dict[str, Any]:
    """The AMQP headers a RabbitMQ delivery arrived with, on either client."""
    if isinstance(delivery, PyAmqpDelivery):
        return dict(delivery.message.properties.get("application_headers") or {})
    assert isinstance(delivery, RabbitMQDelivery)
    return dict(delivery.message.header.properties.headers or {})


@pytest.mark.parametrize("backend", ["rabbitmq", "aio-pika"], indirect=True)
async def test_a_quorum_queue_is_counted_by_the_broker_without_copies(backend: Backend) -> None:
    transport = await backend.connect()
    assert isinstance(transport, PyAmqpTransport | RabbitMQTransport)
    await backend.declared(transport)  # the exchange
    queue = backend.queue_name("quorum")
    await transport.declare_queue_spec(
        QueueSpec(name=queue, durable=True, arguments={"x-queue-type": "quorum"})
    )
    await transport.bind(BindingSpec(source=backend.exchange, destination=queue, routing_key=queue))
    await transport.publish(queue, b"q")
    receiver = Receiver(await transport.consume(queue))
    first = await receiver.get(within=15)
    assert first.deliveries == 1
    await first.nack(requeue=True)
    second = await receiver.get(within=15)
    assert second.redelivered is True
    assert second.deliveries == 2
    assert COUNT_HEADER not in _headers(second)  # counted by the broker, not republished
    await second.ack()
