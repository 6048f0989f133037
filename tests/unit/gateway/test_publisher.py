"""The publisher: job messages spread over several transport lanes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from asya.errors import MessageTooLargeError, TransportError, UnroutableError
from asya.gateway.publisher import Publisher
from asya.payloads import REF_FIELD, ClaimCheck
from asya.payloads.stores import FileStore
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


class SizedTransport(SlowTransport):
    """Refuses bodies over ``limit`` bytes, as SQS does."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    async def publish(self, queue: str, body: bytes, *, delay: float = 0.0) -> None:
        if len(body) > self.limit:
            raise MessageTooLargeError(queue, len(body), self.limit)
        await super().publish(queue, body)


def job(payload: object) -> dict[str, object]:
    return {"job_id": "job-1", "route": {"steps": ["q"], "current": 0}, "payload": payload}


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


@pytest.mark.parametrize(
    ("threshold", "limit"),
    [(1000, 1_000_000), (1_000_000, 4000)],
    ids=["over the threshold", "refused as too large"],
)
async def test_a_large_first_message_goes_by_reference_under_the_jobs_id(
    tmp_path: Path, threshold: int, limit: int
) -> None:
    store = FileStore(tmp_path)
    lane = SizedTransport(limit)
    publisher = Publisher([lane], claim_check=ClaimCheck(store, threshold))
    arguments = {"text": "x" * 5000}
    await publisher.publish("q", job(arguments))
    [(queue, body)] = lane.published
    sent = orjson.loads(body)
    assert (queue, sent["payload"]) == ("q", None)
    assert sent[REF_FIELD]["key"].startswith("job-1/")
    assert orjson.loads(store.get(sent[REF_FIELD]["key"]) or b"") == arguments


async def test_a_small_first_message_stays_inline_with_a_store(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    lane = SizedTransport(1_000_000)
    publisher = Publisher([lane], claim_check=ClaimCheck(store, 1000))
    await publisher.publish("q", job({"text": "short"}))
    assert orjson.loads(lane.published[0][1])["payload"] == {"text": "short"}
    assert store.job_times() == {}


async def test_a_message_too_large_without_a_store_raises_with_the_limit() -> None:
    publisher = Publisher([SizedTransport(4000)])
    with pytest.raises(MessageTooLargeError) as caught:
        await publisher.publish("q", job({"text": "x" * 5000}))
    assert caught.value.limit == 4000
