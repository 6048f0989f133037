"""The gateway publishes tool calls through the SQS transport (moto's SQS server)."""

from __future__ import annotations

import orjson

from asya.transports import open_transport
from tests.integration.transports.receiver import Receiver

from .conftest import QUEUES, serve_gateway


async def test_a_tool_call_is_published_to_its_first_step_on_sqs(
    sqlite_url: str, sqs_url: str, unique_name: str
) -> None:
    url = f"{sqs_url}&prefix={unique_name}-"
    async with open_transport(url) as sqs:
        for queue in QUEUES:
            await sqs.declare_queue(queue)
        try:
            async with serve_gateway(sqlite_url, transport_url=url) as gateway:
                ready = await gateway.client.get("/ready")
                assert ready.status_code == 200, ready.text

                job_id = await gateway.call("test_echo", message="over sqs")
                delivery = await Receiver(await sqs.consume("step-a")).get()
                sent = orjson.loads(delivery.body)
                await delivery.ack()
                assert sent["job_id"] == job_id
                assert sent["payload"] == {"message": "over sqs"}
                assert sent["route"]["steps"] == ["step-a"]
        finally:
            for queue in QUEUES:
                await sqs.delete_queue(queue)
