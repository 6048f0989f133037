"""The cheapest Python relay: py-amqp (Celery's AMQP client) in a synchronous, pipelined loop.

Run as ``python benchmarks/_bare_pyamqp_relay.py URL EXCHANGE SOURCE DESTINATION PREFETCH
[MARKER]``. Like ``_bare_relay.py`` it does only what a sidecar must: publish each input
persistently and mandatory through the exchange with publisher confirms, and ack the input only
when the broker has confirmed its output. It does not wait for a confirm before the next
publish: confirms arrive as frames in the same loop, and each one acks its input(s). With
``MARKER`` it appends the time of its first message there (the pipeline's first step).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from urllib.parse import unquote, urlsplit

import amqp
from _marker import mark_first_start


def connect(url: str) -> amqp.Connection:
    parts = urlsplit(url)
    connection = amqp.Connection(
        f"{parts.hostname or '127.0.0.1'}:{parts.port or 5672}",
        userid=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        virtual_host=unquote(parts.path[1:]) if len(parts.path) > 1 else "/",
    )
    connection.connect()
    return connection


def relay(
    url: str, exchange: str, source: str, destination: str, prefetch: int, marker: str
) -> None:
    connection = connect(url)
    channel = connection.channel()
    channel.basic_qos(0, prefetch, False)
    channel.confirm_select()
    published = 0
    inputs_by_publish: dict[int, int] = {}  # publish sequence number -> input delivery tag

    def on_confirm(sequence: int, multiple: bool) -> None:
        confirmed = [s for s in inputs_by_publish if s <= sequence] if multiple else [sequence]
        for number in confirmed:
            tag = inputs_by_publish.pop(number, None)
            if tag is not None:
                channel.basic_ack(tag)

    def on_message(message: amqp.Message) -> None:
        nonlocal published
        if marker:
            mark_first_start(marker)
        published += 1
        inputs_by_publish[published] = message.delivery_tag
        output = amqp.Message(message.body, delivery_mode=2)
        channel.basic_publish(output, exchange=exchange, routing_key=destination, mandatory=True)

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    channel.events["basic_ack"].add(on_confirm)
    consumer = channel.basic_consume(source, callback=on_message)
    while not stopping:
        with contextlib.suppress(TimeoutError):
            connection.drain_events(timeout=0.5)
    channel.basic_cancel(consumer)
    deadline = time.monotonic() + 10
    while inputs_by_publish and time.monotonic() < deadline:  # the last confirms, then acks
        with contextlib.suppress(TimeoutError):
            connection.drain_events(timeout=0.5)
    connection.close()


if __name__ == "__main__":
    url, exchange_name, source_queue, destination_queue, prefetch_count = sys.argv[1:6]
    start_marker = sys.argv[6] if len(sys.argv) > 6 else ""
    relay(url, exchange_name, source_queue, destination_queue, int(prefetch_count), start_marker)
