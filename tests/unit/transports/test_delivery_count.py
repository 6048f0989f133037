"""Counting deliveries from AMQP headers: quorum queues' own count, Asya's on classic queues."""

from __future__ import annotations

import uuid

from asya.transports import open_transport
from asya.transports.delivery_count import (
    BROKER_COUNT_HEADER,
    COUNT_HEADER,
    delivery_number,
    recounted,
)


def test_a_first_delivery_without_headers_is_number_one() -> None:
    assert delivery_number(None, redelivered=False) == 1
    assert delivery_number({}, redelivered=False) == 1


def test_a_classic_queue_redelivery_must_be_recounted() -> None:
    assert delivery_number(None, redelivered=True) is None
    assert delivery_number({COUNT_HEADER: 3}, redelivered=True) is None


def test_a_recounted_copy_is_the_delivery_its_header_names() -> None:
    assert delivery_number({COUNT_HEADER: 4}, redelivered=False) == 4


def test_recounting_raises_the_count_by_one_and_keeps_other_headers() -> None:
    assert recounted(None) == {COUNT_HEADER: 2}
    assert recounted({COUNT_HEADER: 2, "trace": "t"}) == {COUNT_HEADER: 3, "trace": "t"}


def test_a_chain_of_crashes_on_a_classic_queue_counts_every_delivery() -> None:
    headers: dict[str, object] | None = None
    numbers = []
    for _ in range(5):
        numbers.append(delivery_number(headers, redelivered=False))  # the copy arrives
        assert delivery_number(headers, redelivered=True) is None  # the consumer died
        headers = recounted(headers)
    assert numbers == [1, 2, 3, 4, 5]


def test_a_quorum_queue_count_is_used_as_is() -> None:
    assert delivery_number({BROKER_COUNT_HEADER: 2}, redelivered=True) == 3
    assert delivery_number({BROKER_COUNT_HEADER: 0}, redelivered=False) == 1


def test_both_counts_add_up_for_a_copy_on_a_quorum_queue() -> None:
    assert delivery_number({COUNT_HEADER: 3, BROKER_COUNT_HEADER: 2}, redelivered=True) == 5


def test_foreign_header_values_are_not_taken_for_counts() -> None:
    assert delivery_number({COUNT_HEADER: "7"}, redelivered=False) == 1
    assert delivery_number({COUNT_HEADER: True}, redelivered=False) == 1
    assert delivery_number({COUNT_HEADER: -4}, redelivered=False) == 1
    assert recounted({COUNT_HEADER: "x"}) == {COUNT_HEADER: 2}


async def test_the_memory_transport_counts_deliveries_across_requeues() -> None:
    async with open_transport(f"memory://count-{uuid.uuid4().hex[:8]}") as transport:
        await transport.declare_queue("q")
        await transport.publish("q", b"m")
        subscription = await transport.consume("q")
        seen = []
        for _ in range(3):
            delivery = await anext(aiter(subscription))
            seen.append((delivery.deliveries, delivery.redelivered))
            await delivery.nack(requeue=True)
        assert seen == [(1, False), (2, True), (3, True)]
        await subscription.cancel()
