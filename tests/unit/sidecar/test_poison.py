"""Poison messages (docs/reference/sidecar.md#poison-messages): parked after too many
deliveries, without calling the runtime."""

from __future__ import annotations

import pytest

from asya.sidecar.poison import PoisonGuard

from .conftest import Harness, make_message

pytestmark = pytest.mark.timeout(30)


def test_deliveries_up_to_the_limit_are_processed() -> None:
    guard = PoisonGuard(max_deliveries=3)
    assert [guard.check(b"m", n) for n in (1, 2, 3)] == [None, None, None]
    assert guard.check(b"m", None) is None  # a transport that cannot count parks nothing


def test_the_delivery_after_the_limit_is_parked_with_its_count() -> None:
    failure = PoisonGuard(max_deliveries=3).check(b"m", 4)
    assert failure is not None
    assert failure.code == "poison_message"
    details = failure.details()
    assert details["deliveries"] == 3
    assert details["last_error"] is None
    assert "3 deliveries" in details["message"]
    assert details["severity"] == "fatal"


def test_the_last_error_seen_for_that_message_is_named() -> None:
    guard = PoisonGuard(max_deliveries=1)
    guard.remember(b"other", "publish_failed: nope")
    guard.remember(b"m", "runtime unreachable: gone")
    failure = guard.check(b"m", 2)
    assert failure is not None
    assert failure.details()["last_error"] == "runtime unreachable: gone"
    assert "last error: runtime unreachable: gone" in failure.message


def test_only_a_bounded_number_of_errors_is_remembered() -> None:
    guard = PoisonGuard(max_deliveries=1, remembered=2)
    for body in (b"a", b"b", b"c"):
        guard.remember(body, f"error of {body.decode()}")
    forgotten, kept = guard.check(b"a", 2), guard.check(b"c", 2)
    assert forgotten is not None
    assert forgotten.details()["last_error"] is None
    assert kept is not None
    assert kept.details()["last_error"] == "error of c"


async def give_back(harness: Harness, times: int) -> None:
    """Take the one queued message and give it back ``times`` times, as dying consumers do."""
    subscription = await harness.client.consume(harness.queue)
    for _ in range(times):
        delivery = await anext(aiter(subscription))
        await delivery.nack(requeue=True)
    await subscription.cancel()


async def test_a_message_delivered_too_often_goes_to_error_end_without_the_runtime(
    harness: Harness,
) -> None:
    poisoned = make_message(["step-a", "step-b"], job_id="poisoned")
    await harness.send(poisoned)
    await give_back(harness, times=2)

    await harness.start(max_deliveries=2)
    out = await harness.take("error-end")
    assert out["error"] == "poison_message"
    assert out["job_id"] == "poisoned"
    assert out["failed_step"] == "step-a"
    assert out["route"] == poisoned["route"]
    assert out["error_details"]["deliveries"] == 2
    assert harness.runtime.requests == []

    await harness.send(make_message(["step-a", "step-b"], job_id="fine"))
    assert (await harness.take("step-b"))["job_id"] == "fine"
    assert await harness.depth(harness.queue) == 0


async def test_a_message_within_the_limit_is_processed_normally(harness: Harness) -> None:
    await harness.send(make_message(["step-a", "step-b"], job_id="j"))
    await give_back(harness, times=2)

    await harness.start(max_deliveries=3)
    assert (await harness.take("step-b"))["job_id"] == "j"
    assert len(harness.runtime.requests) == 1
