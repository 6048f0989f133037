"""The ceiling of ``asya bench relay``: a bare aio-pika consume → publish(confirm) → ack loop.

Run as ``python benchmarks/_bare_relay.py URL EXCHANGE SOURCE DESTINATION PREFETCH [MARKER]``.
It does what a sidecar must do at minimum — persistent, confirmed, mandatory publish before the
ack, up to ``PREFETCH`` messages in flight — and nothing else (no parsing, no runtime call).
With ``MARKER`` it appends the time of its first message there (the pipeline's first step).
"""

from __future__ import annotations

import asyncio
import signal
import sys

import aio_pika
from _marker import mark_first_start


async def relay(
    url: str, exchange_name: str, source: str, destination: str, prefetch: int, marker: str
) -> None:
    connection = await aio_pika.connect_robust(url)
    channel = await connection.channel(publisher_confirms=True)
    await channel.set_qos(prefetch_count=prefetch)
    exchange = await channel.get_exchange(exchange_name)
    queue = await channel.get_queue(source)
    tasks: set[asyncio.Task[None]] = set()

    async def forward(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await exchange.publish(
            aio_pika.Message(message.body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=destination,
            mandatory=True,
        )
        await message.ack()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if marker:
            mark_first_start(marker)
        task = asyncio.create_task(forward(message))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    tag = await queue.consume(on_message)
    await stop.wait()
    await queue.cancel(tag)
    if tasks:
        await asyncio.wait(tasks, timeout=10)
    await connection.close()


if __name__ == "__main__":
    url, exchange_name, source, destination, prefetch = sys.argv[1:6]
    marker = sys.argv[6] if len(sys.argv) > 6 else ""
    asyncio.run(relay(url, exchange_name, source, destination, int(prefetch), marker))
