"""Many concurrent SSE streams are cheap: one hub queue each, no database polling."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.integration.gateway.conftest import serve_gateway

STREAMS = 1000
TOOLS = "tools: [{name: slow, route: [step-a], timeout: 0}]"


@pytest.mark.slow
@pytest.mark.serial  # a thousand connections at once: a CPU of its own, or it measures the others
async def test_a_thousand_streams_all_receive_the_final_update(sqlite_url: str) -> None:
    async with serve_gateway(sqlite_url, tools_yaml=TOOLS) as gateway:
        job_id = await gateway.call("slow")
        limits = httpx.Limits(max_connections=STREAMS + 10, max_keepalive_connections=0)
        opened = 0
        all_open = asyncio.Event()

        async def follow(client: httpx.AsyncClient) -> str:
            nonlocal opened
            last = ""
            async with client.stream("GET", f"/jobs/{job_id}/stream") as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    if line.startswith("event: status"):
                        opened += 1
                        if opened == STREAMS:
                            all_open.set()
                    if line.startswith("data: {"):
                        last = line
            return last

        async with httpx.AsyncClient(base_url=gateway.url, limits=limits, timeout=120) as client:
            readers = [asyncio.create_task(follow(client)) for _ in range(STREAMS)]
            await asyncio.wait_for(all_open.wait(), 90)
            started = time.monotonic()
            final = {"status": "succeeded", "result": {"n": 1}}
            assert (
                await gateway.client.post(f"/jobs/{job_id}/final", json=final)
            ).status_code == 200
            lasts = await asyncio.wait_for(asyncio.gather(*readers), 60)
            fan_out = time.monotonic() - started
        assert len(lasts) == STREAMS
        assert all('"status":"Succeeded"' in last for last in lasts)
        assert fan_out < 30
