"""The runtime client's framing and its three kinds of failure."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from asya.sidecar.runtime_client import (
    RuntimeClient,
    RuntimeCrashed,
    RuntimeTimeout,
    RuntimeUnavailable,
)

from .conftest import DROP, FakeRuntime

pytestmark = pytest.mark.timeout(30)


async def test_a_call_sends_one_frame_and_returns_the_response_frame(
    fake_runtime: FakeRuntime,
) -> None:
    client = RuntimeClient(fake_runtime.path, timeout=5)
    body = orjson.dumps({"payload": "é" * 70000, "route": {"steps": ["a"], "current": 0}})
    response = await client.call(body)
    assert fake_runtime.requests == [body]
    assert orjson.loads(response)[0]["payload"] == "é" * 70000


async def test_a_missing_socket_is_unavailable(socket_dir: str) -> None:
    client = RuntimeClient(f"{socket_dir}/none.sock", timeout=5)
    with pytest.raises(RuntimeUnavailable):
        await client.call(b"{}")
    assert not await client.probe()


async def test_a_slow_runtime_times_out(fake_runtime: FakeRuntime) -> None:
    async def slow(message: dict[str, Any]) -> Any:
        await asyncio.sleep(2)
        return []

    fake_runtime.behaviour = slow
    client = RuntimeClient(fake_runtime.path, timeout=0.2)
    with pytest.raises(RuntimeTimeout):
        await client.call(b"{}")


async def test_a_connection_closed_without_a_response_is_a_crash(
    fake_runtime: FakeRuntime,
) -> None:
    async def drop(message: dict[str, Any]) -> Any:
        return DROP

    fake_runtime.behaviour = drop
    client = RuntimeClient(fake_runtime.path, timeout=5)
    with pytest.raises(RuntimeCrashed):
        await client.call(b"{}")


async def test_wait_ready_returns_once_the_socket_accepts(socket_dir: str) -> None:
    runtime = FakeRuntime(f"{socket_dir}/late.sock")
    client = RuntimeClient(runtime.path, timeout=5)
    waiter = asyncio.create_task(client.wait_ready(interval=0.02))
    await asyncio.sleep(0.1)
    assert not waiter.done()
    await runtime.start()
    try:
        await asyncio.wait_for(waiter, 2)
        assert runtime.requests == []  # the probe sends nothing
    finally:
        await runtime.stop()


async def test_a_connection_dropped_by_a_runtime_that_went_away_is_unavailable(
    fake_runtime: FakeRuntime,
) -> None:
    async def shut_down(message: dict[str, Any]) -> Any:
        await fake_runtime.stop()  # like a runtime stopping: socket removed, backlog dropped
        return DROP

    fake_runtime.behaviour = shut_down
    client = RuntimeClient(fake_runtime.path, timeout=5)
    with pytest.raises(RuntimeUnavailable):
        await client.call(b"{}")
