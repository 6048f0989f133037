"""What SQS adds to the contract: visibility kept while a message runs, the size limit, delays
past SQS's 15 minutes, and the standard AWS variables (against moto's SQS server)."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qsl, urlsplit

import pytest

from asya.errors import MessageTooLargeError, UnroutableError
from asya.transports import open_transport, sqs

from .conftest import Backend
from .receiver import Receiver

pytestmark = pytest.mark.parametrize("backend", ["sqs"], indirect=True)


async def test_a_message_running_longer_than_its_visibility_is_not_handed_out_again(
    backend: Backend,
) -> None:
    transport = await backend.connect()  # visibility 3 s (see the sqs_url fixture)
    queue = await backend.declared(transport)
    await transport.publish(queue, b"slow")
    held = await Receiver(await transport.consume(queue)).get()

    other = Receiver(await (await backend.connect()).consume(queue))
    await other.assert_nothing_within(4.0)  # the heartbeat kept it invisible
    await held.ack()
    await other.assert_nothing_within(0.5)


async def test_a_message_over_the_size_limit_is_refused_before_sending(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    with pytest.raises(MessageTooLargeError) as raised:
        await transport.publish(queue, b"x" * (256 * 1024 + 1))
    assert raised.value.limit == 256 * 1024
    assert queue in str(raised.value)
    assert await transport.depth(queue) == 0

    just_fits = b"y" * (256 * 1024)
    await transport.publish(queue, just_fits)
    delivery = await Receiver(await transport.consume(queue)).get()
    assert delivery.body == just_fits
    await delivery.ack()


async def test_binary_bodies_arrive_unchanged(backend: Backend) -> None:
    transport = await backend.connect()
    queue = await backend.declared(transport)
    body = bytes(range(256)) * 4
    await transport.publish(queue, body)
    delivery = await Receiver(await transport.consume(queue)).get()
    assert delivery.body == body
    await delivery.ack()


async def test_a_delay_longer_than_sqs_allows_is_passed_on_until_it_ends(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqs, "MAX_DELAY", 1)  # SQS's 15 minutes, scaled down
    transport = await backend.connect()
    queue = await backend.declared(transport)
    started = time.monotonic()
    await transport.publish(queue, b"much later", delay=3.0)

    delivery = await Receiver(await transport.consume(queue)).get(within=15)
    assert delivery.body == b"much later"
    assert time.monotonic() - started >= 2.5
    await delivery.ack()


async def test_a_bare_sqs_url_uses_the_standard_aws_variables(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = dict(parse_qsl(urlsplit(backend.url).query))
    monkeypatch.setenv("AWS_ENDPOINT_URL", query["endpoint"])
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", query["region"])
    async with open_transport("sqs://") as transport:
        queue = await backend.declared(transport)
        await transport.publish(queue, b"via env")
        assert await transport.depth(queue) == 1
        await asyncio.sleep(0)


async def test_queue_urls_are_looked_up_once_and_again_after_the_queue_is_gone(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = await backend.connect()
    assert isinstance(transport, sqs.SqsTransport)
    queue = backend.queue_name()
    await (await backend.connect()).declare_queue(queue)  # declared elsewhere: not cached here
    lookups: list[str] = []
    call = transport.api.call

    async def counting(operation: str, what: str, **params: object) -> object:
        if operation == "get_queue_url":
            lookups.append(str(params["QueueName"]))
        return await call(operation, what, **params)

    monkeypatch.setattr(transport.api, "call", counting)
    for _ in range(3):
        await transport.publish(queue, b"x")
    assert lookups == [queue]

    await (await backend.connect()).delete_queue(queue)  # by another process
    with pytest.raises(UnroutableError):
        await transport.publish(queue, b"y")
    await transport.declare_queue(queue)
    await transport.publish(queue, b"z")
    assert await transport.depth(queue) == 1
