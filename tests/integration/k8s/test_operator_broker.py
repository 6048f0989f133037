"""The operator declares an actor's queue on the machine's real RabbitMQ (no cluster: the
kubernetes API is the unit tests' fake DynamicClient)."""

from __future__ import annotations

import aio_pika
import pytest

from asya.k8s import operator
from asya.k8s.api import KubeApi
from asya.k8s.settings import OperatorSettings
from tests.unit.k8s.factories import actor
from tests.unit.k8s.fake_kube import FakeDynamicClient

pytestmark = pytest.mark.services

UID = "7f0c1a52-0000-4000-8000-000000000002"


async def test_create_declares_the_queue_on_the_broker(rabbitmq_url: str, unique_name: str) -> None:
    client = FakeDynamicClient()
    client.add_secret("team-a", "rabbitmq-creds", {"pw": "guest"})
    body = actor(
        metadata={"uid": UID, "generation": 1},
        queueName=unique_name,
        transport={"rabbitmq": {"host": "127.0.0.1", "port": 5672, "username": "guest"}},
        sidecar={"env": [{"name": "ASYA_RABBITMQ_EXCHANGE", "value": unique_name}]},
    )
    settings = OperatorSettings(sidecar_image="asya:test", declare_queues=True)
    try:
        await operator.reconcile(body=body, memo=operator.make_memo(settings, KubeApi(client)))
        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(unique_name, passive=True)
            assert queue.name == unique_name
    finally:
        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(unique_name)
            await channel.exchange_delete(unique_name)
