"""A ``backend`` fixture that runs each contract test on memory, SQLite, real RabbitMQ, the
machine's NATS JetStream and SQS (moto's server).

Each test gets names of its own (a RabbitMQ exchange, queue names, a SQLite file, a memory
broker) and everything it declared is deleted afterwards, even when the test fails.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from asya.transports import Transport, open_transport
from asya.transports._rabbitmq_common import RabbitMQSettings, delay_queue_name
from asya.transports.nats import NatsTransport
from asya.transports.pyamqp import PyAmqpTransport
from asya.transports.rabbitmq import RabbitMQTransport

#: "rabbitmq" is what open_transport picks for amqp:// (py-amqp on the loop); "aio-pika" the
#: other RabbitMQ client, kept behind the same contract.
BACKENDS = ["memory", "sqlite", "rabbitmq", "aio-pika", "nats", "sqs"]


class Backend:
    """Opens transports on one backend and remembers what to clean up."""

    def __init__(self, kind: str, url: str, exchange: str, prefix: str) -> None:
        self.kind = kind
        self.url = url
        self.exchange = exchange
        self.prefix = prefix
        self.queues: list[str] = []
        self.delays: set[tuple[str, float]] = set()
        self._opened: list[Transport] = []

    def queue_name(self, label: str = "q") -> str:
        name = f"{self.prefix}-{label}-{uuid.uuid4().hex[:6]}"
        self.queues.append(name)
        return name

    def open(self, url: str | None = None, **options: Any) -> Transport:
        """A transport on this backend (at ``url`` instead, e.g. through a proxy)."""
        url = url or self.url
        if self.kind == "aio-pika":
            settings = RabbitMQSettings(url=url, exchange=self.exchange, **options)
            return self.track(RabbitMQTransport(settings))
        return self.track(open_transport(url, exchange=self.exchange, **options))

    def track(self, transport: Transport) -> Transport:
        """Close ``transport`` when the test ends."""
        self._opened.append(transport)
        return transport

    async def connect(self, **options: Any) -> Transport:
        transport = self.open(**options)
        await transport.connect()
        return transport

    async def declared(self, transport: Transport, label: str = "q") -> str:
        """A fresh queue declared on ``transport``."""
        name = self.queue_name(label)
        await transport.declare_queue(name)
        return name

    def uses_delay(self, queue: str, delay: float) -> None:
        self.delays.add((queue, delay))

    async def cleanup(self) -> None:
        for transport in self._opened:
            await transport.close()
        if self.kind == "memory":
            return
        async with open_transport(self.url, exchange=self.exchange) as transport:
            for queue in self.queues:
                await transport.delete_queue(queue)
            if isinstance(transport, NatsTransport):
                await transport.delete_stream()
            if isinstance(transport, PyAmqpTransport | RabbitMQTransport):
                for queue, delay in self.delays:
                    await transport.delete_queue(delay_queue_name(self.exchange, queue, delay))
                await transport.delete_exchange()


def backend_url(kind: str, tmp_path: Path, broker_url: str, name: str) -> str:
    if kind == "memory":
        return f"memory://{name}"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'queues.db'}"
    return broker_url


@pytest.fixture(params=BACKENDS)
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, unique_name: str
) -> AsyncIterator[Backend]:
    kind: str = request.param
    broker = {"rabbitmq": "rabbitmq", "aio-pika": "rabbitmq", "nats": "nats", "sqs": "sqs"}
    broker_url = request.getfixturevalue(f"{broker[kind]}_url") if kind in broker else ""
    backend = Backend(
        kind, backend_url(kind, tmp_path, broker_url, unique_name), unique_name, unique_name
    )
    try:
        yield backend
    finally:
        await backend.cleanup()
