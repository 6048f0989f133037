"""The gateway publishes tool calls through the SQS transport (moto's SQS server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from mcp import Client

from asya.transports import Transport, open_transport
from tests.integration.transports.receiver import Receiver

from .conftest import QUEUES, serve_gateway

#: Over SQS's 256 KiB, under the gateway's 10 MiB body limit.
BIG = "x" * (300 * 1024)


@asynccontextmanager
async def sqs_steps(sqs_url: str, prefix: str) -> AsyncIterator[tuple[str, Transport]]:
    """The tools' queues on moto's SQS under ``prefix``: the transport URL and a transport."""
    url = f"{sqs_url}&prefix={prefix}-"
    async with open_transport(url) as sqs:
        for queue in QUEUES:
            await sqs.declare_queue(queue)
        try:
            yield url, sqs
        finally:
            for queue in QUEUES:
                await sqs.delete_queue(queue)


async def test_a_tool_call_is_published_to_its_first_step_on_sqs(
    sqlite_url: str, sqs_url: str, unique_name: str
) -> None:
    async with (
        sqs_steps(sqs_url, unique_name) as (url, sqs),
        serve_gateway(sqlite_url, transport_url=url) as gateway,
    ):
        ready = await gateway.client.get("/ready")
        assert ready.status_code == 200, ready.text

        job_id = await gateway.call("test_echo", message="over sqs")
        delivery = await Receiver(await sqs.consume("step-a")).get()
        sent = orjson.loads(delivery.body)
        await delivery.ack()
        assert sent["job_id"] == job_id
        assert sent["payload"] == {"message": "over sqs"}
        assert sent["route"]["steps"] == ["step-a"]


async def test_arguments_over_the_sqs_limit_without_a_store_are_refused_and_the_job_failed(
    sqlite_url: str, sqs_url: str, unique_name: str
) -> None:
    """docs/reference/jobs.md#arguments-by-reference: 413 / MCP isError naming the variable and
    the limit, and the job is Failed with message_too_large, not left Pending."""
    async with (
        sqs_steps(sqs_url, unique_name) as (url, sqs),
        serve_gateway(sqlite_url, transport_url=url) as gateway,
    ):
        response = await gateway.client.post(
            "/tools/call", json={"name": "test_echo", "arguments": {"message": BIG}}
        )
        assert response.status_code == 413, response.text
        refused = response.json()
        assert "ASYA_PAYLOAD_STORE_URL" in refused["error"]
        assert "limit of 262144 bytes" in refused["error"]
        job = await gateway.job(refused["job_id"])
        assert job["status"] == "Failed"
        assert job["error"] == refused["error"]
        assert job["error_details"]["code"] == "message_too_large"
        assert job["error_details"]["failed_step"] == "step-a"

        async with Client(f"{gateway.url}/mcp") as session:
            result = await session.call_tool("test_echo", {"message": BIG})
        assert result.is_error is True
        text = result.content[0].text  # type: ignore[union-attr]
        assert "ASYA_PAYLOAD_STORE_URL" in text
        assert result.structured_content is not None
        mcp_job = await gateway.job(result.structured_content["job_id"])
        assert mcp_job["status"] == "Failed"

        assert await sqs.depth("step-a") == 0  # nothing half-sent
