"""The transport contract (docs/reference/transports.md#contract), run against memory, SQLite and
the machine's RabbitMQ."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import pytest

from asya.errors import TransportError, UnroutableError
from asya.transports import IncomingMessage

from .conftest import Backend
from .receiver import Receiver


async def test_messages_arrive_in_publish_order(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    bodies = [f"m{i}".encode() for i in range(20)]
    for body in bodies:
        await transport.publish(queue, body)

    receiver = Receiver(await transport.consume(queue, prefetch=5))
    received = []
    for _ in bodies:
        delivery = await receiver.get()
        received.append(delivery.body)
        assert delivery.queue == queue
        assert delivery.redelivered is False
        await delivery.ack()
    assert received == bodies


async def test_large_messages_arrive_intact_beside_small_ones(backend: Backend) -> None:
    """300 KB and 1 MB bodies span many frames and many socket reads."""
    if backend.kind == "sqs":
        pytest.skip("SQS caps a message at 256 KiB (test_sqs.py checks the refusal)")
    transport = await backend.connect()
    queue = await backend.declared(transport)
    bodies = [os.urandom(300_000), b"small", os.urandom(1_000_000), os.urandom(131_073)]
    await asyncio.gather(*(transport.publish(queue, body) for body in bodies))

    receiver = Receiver(await transport.consume(queue, prefetch=4))
    received = []
    for _ in bodies:
        delivery = await receiver.get()
        received.append(bytes(delivery.body))
        await delivery.ack()
    assert sorted(received) == sorted(bodies)


async def test_declaring_a_queue_twice_keeps_its_messages(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    await transport.publish(queue, b"kept")
    await transport.declare_queue(queue)
    assert await transport.depth(queue) == 1


async def test_acked_message_is_gone_for_good(backend: Backend) -> None:
    producer = await backend.connect()
    queue = await backend.declared(producer)
    await producer.publish(queue, b"once")
    consumer = await backend.connect()
    receiver = Receiver(await consumer.consume(queue))
    await (await receiver.get()).ack()
    await consumer.close()

    again = Receiver(await (await backend.connect()).consume(queue))
    await again.assert_nothing_within(0.5)
    assert await producer.depth(queue) == 0


async def test_nack_with_requeue_redelivers_flagged_as_redelivered(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    await transport.publish(queue, b"again")
    receiver = Receiver(await transport.consume(queue))

    first = await receiver.get()
    await first.nack(requeue=True)
    second = await receiver.get()

    assert second.body == b"again"
    assert second.redelivered is True
    await second.ack()


async def test_nack_without_requeue_drops_the_message(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    await transport.publish(queue, b"drop me")
    receiver = Receiver(await transport.consume(queue))
    await (await receiver.get()).nack(requeue=False)

    await receiver.assert_nothing_within(0.5)
    assert await transport.depth(queue) == 0


async def test_settling_twice_is_a_no_op(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    await transport.publish(queue, b"x")
    receiver = Receiver(await transport.consume(queue))
    delivery = await receiver.get()
    await delivery.ack()
    await delivery.ack()
    await delivery.nack(requeue=True)
    await receiver.assert_nothing_within(0.3)


async def test_unacked_delivery_returns_when_its_consumer_closes(backend: Backend) -> None:
    producer = await backend.connect()
    queue = await backend.declared(producer)
    await producer.publish(queue, b"survivor")
    consumer = await backend.connect()
    taken = await Receiver(await consumer.consume(queue)).get()
    assert taken.body == b"survivor"

    await consumer.close()

    redelivered = await Receiver(await producer.consume(queue)).get()
    assert redelivered.body == b"survivor"
    assert redelivered.redelivered is True
    await redelivered.ack()


async def test_settling_after_the_transport_closed_raises(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    await transport.publish(queue, b"x")
    delivery = await Receiver(await transport.consume(queue)).get()
    await transport.close()
    with pytest.raises(TransportError):
        await delivery.ack()


async def test_delayed_message_stays_invisible_until_its_delay_passes(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    backend.uses_delay(queue, 1.0)
    started = time.monotonic()
    await transport.publish(queue, b"later", delay=1.0)
    await transport.publish(queue, b"now")

    receiver = Receiver(await transport.consume(queue))
    first = await receiver.get()
    assert first.body == b"now"
    await first.ack()
    assert await transport.depth(queue) == 0

    later = await receiver.get(within=10)
    assert later.body == b"later"
    assert time.monotonic() - started >= 0.95
    await later.ack()


async def test_depth_counts_only_ready_messages(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    assert await transport.depth(queue) == 0
    for i in range(3):
        await transport.publish(queue, str(i).encode())
    assert await transport.depth(queue) == 3

    receiver = Receiver(await transport.consume(queue, prefetch=1))
    held = await receiver.get()
    await receiver.assert_nothing_within(0.2)
    assert await transport.depth(queue) == 2
    await held.ack()


async def test_consumers_are_counted_where_the_transport_can_tell(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    before = await transport.consumers(queue)
    if before is None:  # SQLite and memory cannot see other processes' consumers: no answer
        return
    assert before == 0
    subscription = await transport.consume(queue)
    assert await transport.consumers(queue) == 1
    await subscription.cancel()


async def test_purge_drops_ready_messages_and_counts_them(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    for i in range(4):
        await transport.publish(queue, str(i).encode())

    assert await transport.purge(queue) == 4
    assert await transport.depth(queue) == 0
    await transport.publish(queue, b"after purge")
    delivery = await Receiver(await transport.consume(queue)).get()
    assert delivery.body == b"after purge"
    await delivery.ack()


async def test_publishing_to_an_undeclared_queue_raises_unroutable(backend: Backend) -> None:
    transport = await backend.connect()
    missing = backend.queue_name("missing")
    with pytest.raises(UnroutableError) as raised:
        await transport.publish(missing, b"nowhere")
    assert raised.value.queue == missing
    assert missing in str(raised.value)

    # the transport stays usable after a returned message
    queue = await backend.declared(transport)
    await transport.publish(queue, b"fine")
    assert await transport.depth(queue) == 1


async def test_delayed_publish_to_an_undeclared_queue_raises_unroutable(backend: Backend) -> None:
    transport = await backend.connect()
    missing = backend.queue_name("missing")
    backend.uses_delay(missing, 0.5)
    with pytest.raises(UnroutableError):
        await transport.publish(missing, b"nowhere", delay=0.5)


async def test_operations_on_an_undeclared_queue_raise_transport_error(backend: Backend) -> None:
    transport = await backend.connect()
    missing = backend.queue_name("missing")
    with pytest.raises(TransportError, match=missing):
        await transport.depth(missing)
    with pytest.raises(TransportError, match=missing):
        await transport.consume(missing)
    with pytest.raises(TransportError, match=missing):
        await transport.purge(missing)


async def test_prefetch_limits_deliveries_in_flight(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    for i in range(5):
        await transport.publish(queue, str(i).encode())
    receiver = Receiver(await transport.consume(queue, prefetch=2))

    first, second = await receiver.get_many(2)
    await receiver.assert_nothing_within(0.5)
    await first.ack()
    third = await receiver.get()
    assert [first.body, second.body, third.body] == [b"0", b"1", b"2"]
    await receiver.assert_nothing_within(0.3)
    await second.ack()
    await third.ack()


async def test_cancel_stops_delivery_and_leaves_messages_queued(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    await transport.publish(queue, b"first")
    subscription = await transport.consume(queue)
    receiver = Receiver(subscription)
    held = await receiver.get()

    await subscription.cancel()
    await transport.publish(queue, b"second")

    assert await receiver.ended()
    await held.ack()  # a delivery taken before cancel can still be settled
    other = Receiver(await (await backend.connect()).consume(queue))
    second = await other.get()
    assert second.body == b"second"
    await second.ack()


async def test_deleted_queue_refuses_publishes(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    await transport.publish(queue, b"x")
    await transport.delete_queue(queue)
    with pytest.raises(UnroutableError):
        await transport.publish(queue, b"y")
    await transport.delete_queue(queue)  # deleting again is fine


async def test_ping_answers_while_connected(backend: Backend) -> None:
    transport = await backend.connect()
    await transport.ping()


async def test_consuming_again_after_cancel_keeps_working(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    for round_ in range(5):
        await transport.publish(queue, f"round {round_}".encode())
        subscription = await transport.consume(queue)
        delivery = await Receiver(subscription).get()
        assert delivery.body == f"round {round_}".encode()
        await subscription.cancel()
        await delivery.ack()
    assert await transport.depth(queue) == 0


async def test_serve_runs_handlers_concurrently_up_to_prefetch_and_ends_on_cancel(
    backend: Backend,
) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    for i in range(6):
        await transport.publish(queue, str(i).encode())
    subscription = await transport.consume(queue, prefetch=3)
    release = asyncio.Event()
    running: list[bytes] = []
    handled: list[bytes] = []

    async def handler(delivery: IncomingMessage) -> None:
        running.append(delivery.body)
        await release.wait()
        await delivery.ack()
        handled.append(delivery.body)

    serving = asyncio.create_task(subscription.serve(handler))
    await _until(lambda: len(running) == 3)
    await asyncio.sleep(0.3)
    assert running == [b"0", b"1", b"2"]  # the fourth waits for a free prefetch slot
    release.set()
    await _until(lambda: len(handled) == 6)
    assert sorted(handled) == [str(i).encode() for i in range(6)]
    assert not serving.done()

    await subscription.cancel()
    await asyncio.wait_for(serving, 5)
    assert await transport.depth(queue) == 0


async def test_serve_takes_deliveries_that_arrived_before_it_was_called(
    backend: Backend,
) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    for i in range(3):
        await transport.publish(queue, str(i).encode())
    subscription = await transport.consume(queue, prefetch=10)
    await asyncio.sleep(0.3)  # a pushing backend has delivered them by now
    handled: list[bytes] = []

    async def handler(delivery: IncomingMessage) -> None:
        await delivery.ack()
        handled.append(delivery.body)

    serving = asyncio.create_task(subscription.serve(handler))
    await _until(lambda: len(handled) == 3)
    assert sorted(handled) == [b"0", b"1", b"2"]
    await subscription.cancel()
    await asyncio.wait_for(serving, 5)


async def _until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
