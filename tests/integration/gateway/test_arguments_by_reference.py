"""Tool arguments over ASYA_PAYLOAD_OFFLOAD_THRESHOLD leave the gateway by reference
(docs/reference/jobs.md#arguments-by-reference): on RabbitMQ the queue holds only the
reference, and the gateway's retention deletes the object once the job has ended, never while
it runs (on PostgreSQL and SQLite)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from asya.payloads import REF_FIELD, ClaimCheck
from asya.payloads.stores import FileStore
from asya.transports import open_transport
from tests.integration.transports.receiver import Receiver

from .conftest import eventually, serve_gateway

MIB = "x" * (1024 * 1024)


async def test_a_1_mib_argument_reaches_the_rabbitmq_queue_only_as_a_reference(
    sqlite_url: str, rabbitmq_url: str, unique_name: str, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "payloads")
    queue = f"{unique_name}-first"
    tools = f"tools: [{{name: test_big, parameters: {{text: {{type: string}}}}, route: [{queue}]}}]"
    async with open_transport(rabbitmq_url, exchange=unique_name) as rabbit:
        await rabbit.declare_queue(queue)
        try:
            async with serve_gateway(
                sqlite_url,
                tools_yaml=tools,
                transport_url=rabbitmq_url,
                exchange=unique_name,
                payload_store_url=store.root.as_uri(),
            ) as gateway:
                job_id = await gateway.call("test_big", text=MIB)
                delivery = await Receiver(await rabbit.consume(queue)).get()
                await delivery.ack()
        finally:
            await rabbit.delete_queue(queue)
            await rabbit.delete_exchange()  # type: ignore[attr-defined]

    assert len(delivery.body) < 2048  # the broker carried the reference, not the megabyte
    sent = orjson.loads(delivery.body)
    assert (sent["job_id"], sent["payload"]) == (job_id, None)
    assert sent[REF_FIELD]["key"].startswith(f"{job_id}/")
    resolved = await ClaimCheck(store, threshold=1).resolve(sent)
    assert resolved["payload"] == {"text": MIB}


async def test_retention_deletes_the_arguments_after_the_job_ended_not_while_it_runs(
    database_url: str, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "payloads")
    async with serve_gateway(
        database_url,
        payload_store_url=store.root.as_uri(),
        payload_offload_threshold=1024,
        payload_retention=1.0,  # swept every second
    ) as gateway:
        job_id = await gateway.call("test_echo", message="y" * 5000)
        assert REF_FIELD in await gateway.sent()
        assert list(store.job_times()) == [job_id]

        await asyncio.sleep(2.5)  # older than the retention, and swept, while running
        assert (await gateway.job(job_id))["status"] == "Running"
        assert list(store.job_times()) == [job_id]

        final = await gateway.client.post(
            f"/jobs/{job_id}/final", json={"status": "succeeded", "result": {"ok": True}}
        )
        assert final.status_code == 200, final.text
        await eventually(lambda: asyncio.to_thread(lambda: not store.job_times()), limit=6)
