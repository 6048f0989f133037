"""The publisher: job messages spread over several transport lanes."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from asya.errors import TransportError, UnroutableError
from asya.gateway.publisher import Publisher
from asya.transports.base import Subscription, Transport


class SlowTransport(Transport):
    """Records publishes; each takes a moment, so concurrent ones overlap."""

    name = "slow"

    def __init__(self, fail: BaseException | None = None) -> None:
        self.published: list[tuple[str, bytes]] = []
        self.connected = False
        self.fail = fail

    async def connect(self) -> None:
        self.connected = True

    async def close(self) -> None:
        self.connected = False

    async def publish(self, queue: str, body: bytes, *, delay: float = 0.0) -> None:
        await asyncio.sleep(0.01)
        if self.fail is not None:
            raise self.fail
        self.published.append((queue, body))

    async def consume(self, queue: str, *, prefetch: int = 1) -> Subscription:
        raise NotImplementedError

    async def declare_queue(self, queue: str) -> None:
        raise NotImplementedError

    async def depth(self, queue: str) -> int:
        raise NotImplementedError

    async def purge(self, queue: str) -> int:
        raise NotImplementedError

    async def delete_queue(self, queue: str) -> None:
        raise NotImplementedError


@pytest.fixture
def lanes() -> list[SlowTransport]:
    return [SlowTransport() for _ in range(3)]


async def test_concurrent_publishes_are_spread_over_every_lane(lanes: list[SlowTransport]) -> None:
    publisher = Publisher(lanes, concurrency=20)
    await publisher.start()
    await asyncio.gather(*(publisher.publish("q", {"n": n}) for n in range(12)))
    assert [len(lane.published) for lane in lanes] == [4, 4, 4]
    received = sorted(orjson.loads(body)["n"] for lane in lanes for _, body in lane.published)
    assert received == list(range(12))
    assert publisher.transport is lanes[0]
    await publisher.close()
    assert not any(lane.connected for lane in lanes)


async def test_a_failed_publish_raises_a_transport_error_naming_the_queue() -> None:
    broken = Publisher([SlowTransport(fail=RuntimeError("socket closed"))])
    with pytest.raises(TransportError, match="publish to 'q' failed: socket closed"):
        await broken.publish("q", {})
    with pytest.raises(UnroutableError):
        await Publisher([SlowTransport(fail=UnroutableError("q"))]).publish("q", {})


def test_a_publisher_needs_a_lane() -> None:
    with pytest.raises(ValueError, match="at least one transport"):
        Publisher([])
