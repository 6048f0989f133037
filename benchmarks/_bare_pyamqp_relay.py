"""The cheapest Python relay: py-amqp (Celery's AMQP client) in a synchronous, pipelined loop.

Run as ``python benchmarks/_bare_pyamqp_relay.py URL EXCHANGE SOURCE DESTINATION PREFETCH
[MARKER [SOCKET]]``. Like ``_bare_relay.py`` it does only what a sidecar must: publish each
input persistently and mandatory through the exchange with publisher confirms, and ack the
input only when the broker has confirmed its output. It does not wait for a confirm before the
next publish: confirms arrive as frames in the same loop, and each one acks its input(s). With
``MARKER`` it appends the time of its first message there (the pipeline's first step).

With ``SOCKET`` it is the floor of any sidecar + runtime design ("relay + socket call"): it
starts ``_bare_runtime.py`` on that Unix socket and sends each input there as one
length-prefixed frame, over one kept connection, without waiting for the answer; it publishes
each answer as it arrives (answers come back in request order). One ``selectors`` loop serves
the broker's socket and the runtime's.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
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


HEADER = struct.Struct(">I")


class SocketCall:
    """The bare runtime in a child process, and one kept, pipelined connection to it."""

    def __init__(self, path: str) -> None:
        server = Path(__file__).with_name("_bare_runtime.py")
        self.server = subprocess.Popen([sys.executable, str(server), path])
        deadline = time.monotonic() + 30
        while not os.path.exists(path):
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bare runtime did not start on {path}")
            time.sleep(0.01)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.waiting: deque[int] = deque()  # delivery tags, in request order
        self._buffer = b""

    def send(self, body: bytes, tag: int) -> None:
        self.waiting.append(tag)
        self.sock.sendall(HEADER.pack(len(body)) + body)

    def answers(self) -> list[tuple[bytes, int]]:
        """The whole answers readable now, each with its input's delivery tag."""
        data = self._buffer + self.sock.recv(65536)
        done = []
        while len(data) >= HEADER.size:
            (length,) = HEADER.unpack_from(data)
            end = HEADER.size + length
            if len(data) < end:
                break
            done.append((data[HEADER.size : end], self.waiting.popleft()))
            data = data[end:]
        self._buffer = data
        return done

    def close(self) -> None:
        self.sock.close()
        self.server.terminate()
        self.server.wait(10)


def relay(
    url: str,
    exchange: str,
    source: str,
    destination: str,
    prefetch: int,
    marker: str,
    socket_path: str = "",
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

    def forward(body: bytes, tag: int) -> None:
        nonlocal published
        published += 1
        inputs_by_publish[published] = tag
        output = amqp.Message(body, delivery_mode=2)
        channel.basic_publish(output, exchange=exchange, routing_key=destination, mandatory=True)

    call = SocketCall(socket_path) if socket_path else None

    def on_message(message: amqp.Message) -> None:
        if marker:
            mark_first_start(marker)
        if call is None:
            forward(message.body, message.delivery_tag)
        else:
            call.send(message.body, message.delivery_tag)

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    channel.events["basic_ack"].add(on_confirm)
    consumer = channel.basic_consume(source, callback=on_message)
    if call is None:
        while not stopping:
            with contextlib.suppress(TimeoutError):
                connection.drain_events(timeout=0.5)
    else:
        serve_both(connection, call, forward, lambda: stopping)
    channel.basic_cancel(consumer)
    deadline = time.monotonic() + 10
    while inputs_by_publish and time.monotonic() < deadline:  # the last confirms, then acks
        with contextlib.suppress(TimeoutError):
            connection.drain_events(timeout=0.5)
    connection.close()
    if call is not None:
        call.close()


def serve_both(
    connection: amqp.Connection,
    call: SocketCall,
    forward: Callable[[bytes, int], None],
    stopping: Callable[[], bool],
) -> None:
    """Read the broker (deliveries, confirms) and the runtime (answers) as either is ready."""
    selector = selectors.DefaultSelector()
    selector.register(connection.sock, selectors.EVENT_READ, "broker")
    selector.register(call.sock, selectors.EVENT_READ, "runtime")
    while not stopping():
        for key, _ in selector.select(0.5):
            if key.data == "runtime":
                for body, tag in call.answers():
                    forward(body, tag)
                continue
            with contextlib.suppress(TimeoutError):  # every complete frame, then back here
                while True:
                    connection.drain_events(timeout=0)


if __name__ == "__main__":
    url, exchange_name, source_queue, destination_queue, prefetch_count = sys.argv[1:6]
    start_marker = sys.argv[6] if len(sys.argv) > 6 else ""
    runtime_socket = sys.argv[7] if len(sys.argv) > 7 else ""
    relay(
        url,
        exchange_name,
        source_queue,
        destination_queue,
        int(prefetch_count),
        start_marker,
        runtime_socket,
    )
