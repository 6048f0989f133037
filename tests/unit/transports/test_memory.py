"""The in-process transport: named brokers and the rules the real ones keep.

The full contract runs against it in tests/integration/transports; these are the quick checks
of what only the memory transport has (named brokers) plus the basics unit tests lean on.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from asya.errors import TransportError, UnroutableError
from asya.transports import open_transport


def broker_url() -> str:
    return f"memory://unit-{uuid.uuid4().hex[:8]}"


async def test_transports_on_the_same_name_share_queues() -> None:
    url = broker_url()
    async with open_transport(url) as producer, open_transport(url) as consumer:
        await producer.declare_queue("q")
        await producer.publish("q", b"hello")
        delivery = await anext(aiter(await consumer.consume("q")))
        assert delivery.body == b"hello"
        await delivery.ack()


async def test_brokers_with_different_names_are_isolated() -> None:
    async with open_transport(broker_url()) as one, open_transport(broker_url()) as two:
        await one.declare_queue("q")
        with pytest.raises(UnroutableError):
            await two.publish("q", b"x")


async def test_using_a_transport_before_connect_raises() -> None:
    transport = open_transport(broker_url())
    with pytest.raises(TransportError, match="not connected"):
        await transport.declare_queue("q")


async def test_closing_a_consumer_requeues_its_unacked_delivery() -> None:
    url = broker_url()
    async with open_transport(url) as producer:
        await producer.declare_queue("q")
        await producer.publish("q", b"job")
        consumer = open_transport(url)
        await consumer.connect()
        first = await anext(aiter(await consumer.consume("q")))
        assert await producer.depth("q") == 0
        await consumer.close()

        assert await producer.depth("q") == 1
        again = await anext(aiter(await producer.consume("q")))
        assert again.body == first.body
        assert again.redelivered


async def test_waiting_for_a_delivery_can_time_out_without_losing_the_next_one() -> None:
    async with open_transport(broker_url()) as transport:
        await transport.declare_queue("q")
        iterator = aiter(await transport.consume("q"))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(iterator), 0.05)
        await transport.publish("q", b"after the timeout")
        delivery = await asyncio.wait_for(anext(iterator), 1)
        assert delivery.body == b"after the timeout"


async def test_prefetch_below_one_is_refused() -> None:
    async with open_transport(broker_url()) as transport:
        await transport.declare_queue("q")
        with pytest.raises(ValueError, match="prefetch"):
            await transport.consume("q", prefetch=0)
