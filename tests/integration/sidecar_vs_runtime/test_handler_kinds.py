"""Handler shapes the runtime accepts, run as real actors: ``async def`` and class methods."""

from __future__ import annotations

import pytest

from tests.integration.sidecar_vs_runtime.broker import Broker, Inbox
from tests.integration.sidecar_vs_runtime.checks import assert_error_end, assert_routed_to_end
from tests.integration.sidecar_vs_runtime.harness import (
    Processes,
    SuiteConfig,
    message,
    wait_consuming,
)

pytestmark = pytest.mark.services


def test_an_async_handler_is_awaited(
    suite: SuiteConfig, broker: Broker, happy_end: Inbox, procs: Processes, tid: str
) -> None:
    queue = suite.q(f"kinds-async-{tid[2:10]}")
    wait_consuming(
        broker, {queue: procs.actor(f"async-{tid[2:10]}", "async_echo", queue, suite.env())}
    )
    sent = message([queue], {"test_id": tid})
    broker.publish(queue, sent)

    [out] = happy_end.expect(tid)

    assert_routed_to_end(out, sent, {"test_id": tid, "awaited": True})


def test_a_class_handler_keeps_its_instance_and_a_replacement_worker_starts_clean(
    suite: SuiteConfig,
    broker: Broker,
    happy_end: Inbox,
    error_end: Inbox,
    procs: Processes,
    tid: str,
) -> None:
    queue = suite.q(f"kinds-class-{tid[2:10]}")
    actor = procs.actor(
        f"class-{tid[2:10]}", "Counter.handle", queue, suite.env({"ASYA_MAX_RETRIES": "0"})
    )
    wait_consuming(broker, {queue: actor})

    def call(n: int, **extra: object) -> dict[str, object]:
        sent = message([queue], {"test_id": f"{tid}-{n}", **extra})
        broker.publish(queue, sent)
        return sent

    for n in (1, 2):
        call(n)
        [out] = happy_end.expect(f"{tid}-{n}")
        assert out["payload"]["calls"] == n  # the same instance served both

    crashing = call(3, crash=True)
    [failed] = error_end.expect(f"{tid}-3", timeout=30)
    assert_error_end(failed, crashing, code="runtime_crashed", failed_step=queue)

    call(4)
    [out] = happy_end.expect(f"{tid}-4", timeout=30)
    assert out["payload"]["calls"] == 1  # a fresh instance in the replacement worker
