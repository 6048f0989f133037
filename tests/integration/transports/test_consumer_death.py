"""A consumer process killed mid-message must not lose it (SQLite lease, RabbitMQ channel, NATS
ack wait, SQS visibility timeout)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

from asya.transports import open_transport
from tests.helpers import child_env

from .conftest import Backend
from .receiver import Receiver

WORKER = Path(__file__).with_name("worker.py")


@pytest.mark.parametrize("backend", ["sqlite", "rabbitmq", "nats", "sqs"], indirect=True)
async def test_message_held_by_a_killed_consumer_process_is_redelivered(
    backend: Backend,
) -> None:
    # a short lease (SQLite) or ack wait (NATS), so the message comes back soon after its
    # holder dies; the NATS holder keeps it meanwhile with in-progress acks
    option = {"sqlite": "lease=1s", "nats": "ack_wait=2s"}.get(backend.kind)
    url = f"{backend.url}?{option}" if option else backend.url
    transport = backend.track(open_transport(url, exchange=backend.exchange))
    await transport.connect()
    queue = await backend.declared(transport)
    await transport.publish(queue, b"in-flight")
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        "hold",
        url,
        backend.exchange,
        queue,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        line = await asyncio.wait_for(holder.stdout.readline(), 30)
        assert line.decode().strip() == "held in-flight"
        assert await transport.depth(queue) == 0
        holder.kill()
        await asyncio.wait_for(holder.wait(), 10)
        killed_at = time.monotonic()

        redelivered = await Receiver(await transport.consume(queue)).get(within=15)
        assert redelivered.body == b"in-flight"
        assert redelivered.redelivered is True
        await redelivered.ack()
        assert time.monotonic() - killed_at < 10
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
