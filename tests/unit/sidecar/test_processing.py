"""Every per-message step (docs/reference/sidecar.md#per-message), through a real Sidecar on the
memory transport."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from asya.errors import TransportError
from asya.transports.memory import MemoryTransport

from .conftest import DROP, Harness, make_message

pytestmark = pytest.mark.timeout(30)


def error_response(code: str, severity: str = "fatal", **details: Any) -> list[dict[str, Any]]:
    return [
        {
            "error": code,
            "details": {
                "message": f"{code} happened",
                "type": "ValueError",
                "traceback": "Traceback ...",
                "severity": severity,
                **details,
            },
        }
    ]


async def test_success_goes_to_the_next_step_with_current_advanced(harness: Harness) -> None:
    await harness.start()
    message = make_message(["step-a", "step-b"], job_id="j1", extra_field={"kept": True})
    await harness.send(message)
    out = await harness.take("step-b")
    assert out["route"] == {"steps": ["step-a", "step-b"], "current": 1, "metadata": {}}
    assert out["payload"] == {"value": 1}
    assert out["job_id"] == "j1"
    assert out["extra_field"] == {"kept": True}


async def test_the_runtime_receives_the_message_exactly_as_queued(harness: Harness) -> None:
    await harness.start()
    body = b'{"payload": {"b": 2, "a": 1},  "route": {"steps": ["step-a"], "current": 0}}'
    await harness.send(body)
    await harness.take("happy-end")
    assert harness.runtime.requests == [body]


async def test_last_step_output_goes_to_happy_end(harness: Harness) -> None:
    await harness.start()
    await harness.send(make_message(["step-a"], payload={"x": "y"}))
    out = await harness.take("happy-end")
    assert out["route"]["current"] == 1
    assert out["payload"] == {"x": "y"}


async def test_fan_out_routes_every_output_independently(harness: Harness) -> None:
    async def fan_out(message: dict[str, Any]) -> Any:
        first = {**message, "payload": {"index": 0}}
        second = {
            **message,
            "payload": {"index": 1},
            "route": {**message["route"], "steps": ["step-a"]},
        }
        return [first, second]

    harness.runtime.behaviour = fan_out
    await harness.start()
    await harness.send(make_message(["step-a", "step-b"]))
    routed = await harness.take("step-b")
    finished = await harness.take("happy-end")
    assert routed["payload"] == {"index": 0}
    assert routed["route"]["current"] == 1
    assert finished["payload"] == {"index": 1}
    assert finished["route"] == {"steps": ["step-a"], "current": 1, "metadata": {}}
    assert routed["branch"] == [{"index": 0, "count": 2}]
    assert finished["branch"] == [{"index": 1, "count": 2}]


async def test_empty_response_sends_the_original_message_unchanged_to_happy_end(
    harness: Harness,
) -> None:
    async def nothing(message: dict[str, Any]) -> Any:
        return []

    harness.runtime.behaviour = nothing
    await harness.start()
    body = await harness.send(make_message(["step-a", "step-b"], job_id="j2"))
    assert await harness.take_raw("happy-end") == body
    assert await harness.depth("step-b") == 0


async def test_invalid_json_goes_to_error_end_without_calling_the_runtime(
    harness: Harness,
) -> None:
    await harness.start()
    await harness.send(b"{not json")
    out = await harness.take("error-end")
    assert out["error"] == "msg_parsing_error"
    assert out["original_message"] == "{not json"
    assert out["failed_step"] == "step-a"
    assert out["error_details"]["severity"] == "fatal"
    assert harness.runtime.requests == []


@pytest.mark.parametrize(
    "message",
    [
        {"route": {"steps": ["step-a"], "current": 0}},
        {"payload": 1, "route": {"steps": ["step-a"], "current": 1}},
        {"payload": 1, "route": {"steps": ["step-a"], "current": True}},
        {"payload": 1, "route": {"steps": "step-a", "current": 0}},
        {"payload": 1, "route": {"steps": ["step-a", ""], "current": 0}},
        [1, 2],
    ],
)
async def test_a_message_without_a_valid_route_goes_to_error_end(
    harness: Harness, message: Any
) -> None:
    await harness.start()
    await harness.send(orjson.dumps(message))
    out = await harness.take("error-end")
    assert out["error"] == "msg_parsing_error"
    assert out["error_details"]["message"]
    assert harness.runtime.requests == []


async def test_an_expired_deadline_goes_to_error_end_without_calling_the_runtime(
    harness: Harness,
) -> None:
    await harness.start()
    message = make_message(["step-a", "step-b"], job_id="j3")
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat().replace("+00:00", "Z")
    message["route"]["metadata"]["deadline"] = past
    await harness.send(message)
    out = await harness.take("error-end")
    assert out["error"] == "deadline_exceeded"
    assert out["job_id"] == "j3"
    assert harness.runtime.requests == []


async def test_a_future_deadline_does_not_stop_the_message(harness: Harness) -> None:
    await harness.start()
    message = make_message(["step-a"])
    message["route"]["metadata"]["deadline"] = (
        datetime.now(UTC) + timedelta(minutes=5)
    ).isoformat()
    await harness.send(message)
    assert (await harness.take("happy-end"))["route"]["current"] == 1


async def test_a_handler_error_becomes_the_error_end_message(harness: Harness) -> None:
    async def fail(message: dict[str, Any]) -> Any:
        return error_response("processing_error")

    harness.runtime.behaviour = fail
    await harness.start()
    message = make_message(["step-a", "step-b"], payload={"n": 5}, job_id="j4")
    body = await harness.send(message)
    out = await harness.take("error-end")
    assert set(out) == {
        "job_id",
        "error",
        "error_details",
        "original_message",
        "route",
        "payload",
        "failed_step",
        "attempts",
    }
    assert out["job_id"] == "j4"
    assert out["error"] == "processing_error"
    assert out["error_details"] == {
        "message": "processing_error happened",
        "type": "ValueError",
        "traceback": "Traceback ...",
        "severity": "fatal",
    }
    assert out["original_message"] == body.decode()
    assert out["route"] == message["route"]
    assert out["payload"] == {"n": 5}
    assert out["failed_step"] == "step-a"
    assert out["attempts"] == 1
    assert await harness.depth("step-b") == 0


async def test_a_recoverable_error_without_retries_goes_straight_to_error_end(
    harness: Harness,
) -> None:
    async def oom(message: dict[str, Any]) -> Any:
        return error_response("oom_error", "recoverable", retry_after=30)

    harness.runtime.behaviour = oom
    await harness.start()
    await harness.send(make_message(["step-a"]))
    out = await harness.take("error-end")
    assert out["error"] == "oom_error"
    assert out["error_details"]["severity"] == "recoverable"
    assert out["attempts"] == 1
    assert len(harness.runtime.requests) == 1


async def test_a_recoverable_error_is_retried_with_attempt_counted_then_error_ends(
    harness: Harness,
) -> None:
    async def oom(message: dict[str, Any]) -> Any:
        return error_response("cuda_oom_error", "recoverable")

    harness.runtime.behaviour = oom
    await harness.start(max_retries=2, retry_backoff=0.05)
    await harness.send(make_message(["step-a", "step-b"], job_id="j5"))
    out = await harness.take("error-end")
    assert out["error"] == "cuda_oom_error"
    assert out["attempts"] == 3
    requests = [orjson.loads(r) for r in harness.runtime.requests]
    attempts = [r["route"].get("metadata", {}).get("attempt") for r in requests]
    assert attempts == [None, 1, 2]
    assert out["route"]["metadata"]["attempt"] == 2


async def test_a_retried_message_that_succeeds_leaves_no_attempt_for_the_next_step(
    harness: Harness,
) -> None:
    calls = 0

    async def flaky(message: dict[str, Any]) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            return error_response("oom_error", "recoverable")
        return [message]

    harness.runtime.behaviour = flaky
    await harness.start(max_retries=3, retry_backoff=0.05)
    await harness.send(make_message(["step-a", "step-b"]))
    out = await harness.take("step-b")
    assert out["route"]["current"] == 1
    assert "attempt" not in out["route"]["metadata"]
    assert await harness.depth("error-end") == 0


async def test_retries_do_not_block_other_messages(harness: Harness) -> None:
    async def selective(message: dict[str, Any]) -> Any:
        if message["payload"].get("fail"):
            return error_response("oom_error", "recoverable", retry_after=1.5)
        return [message]

    harness.runtime.behaviour = selective
    await harness.start(max_retries=1)
    await harness.send(make_message(["step-a"], payload={"fail": True}))
    await harness.send(make_message(["step-a"], payload={"fail": False}))
    started = time.monotonic()
    ok = await harness.take("happy-end")
    assert ok["payload"] == {"fail": False}
    assert time.monotonic() - started < 1.0  # did not wait for the 1.5 s retry delay
    failed = await harness.take("error-end")
    assert failed["attempts"] == 2


async def test_a_runtime_timeout_goes_to_error_end_then_pauses(harness: Harness) -> None:
    async def slow(message: dict[str, Any]) -> Any:
        if message["payload"].get("slow"):
            await asyncio.sleep(3)
        return [message]

    harness.runtime.behaviour = slow
    await harness.start(runtime_timeout=0.3)
    await harness.send(make_message(["step-a"], payload={"slow": True}))
    await harness.send(make_message(["step-a"], payload={"slow": False}))
    out = await harness.take("error-end")
    timed_out_at = time.monotonic()
    assert out["error"] == "timeout_error"
    assert out["error_details"]["message"] == "Runtime timeout exceeded (300ms)"
    assert out["error_details"]["severity"] == "fatal"
    ok = await harness.take("happy-end")
    assert ok["payload"] == {"slow": False}
    assert time.monotonic() - timed_out_at >= 1.5  # the 2 s recovery pause


async def test_a_dropped_connection_is_a_recoverable_runtime_crash(harness: Harness) -> None:
    async def crash(message: dict[str, Any]) -> Any:
        return DROP

    harness.runtime.behaviour = crash
    await harness.start()
    await harness.send(make_message(["step-a"]))
    out = await harness.take("error-end")
    assert out["error"] == "runtime_crashed"
    assert out["error_details"]["severity"] == "recoverable"


async def test_an_invalid_runtime_response_goes_to_error_end(harness: Harness) -> None:
    async def garbage(message: dict[str, Any]) -> Any:
        return b"not json at all"

    harness.runtime.behaviour = garbage
    await harness.start()
    await harness.send(make_message(["step-a"]))
    out = await harness.take("error-end")
    assert out["error"] == "runtime_error"
    assert "not json at all" in out["error_details"]["message"]


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ("just text", "expected an object, got str"),
        ({"payload": 1, "route": ["step-a"]}, "'route' must be an object"),
        ({"payload": 1, "route": {"steps": ["step-a"], "current": 1}}, "out of range"),
    ],
)
async def test_an_unroutable_runtime_output_goes_to_error_end_as_a_processing_error(
    harness: Harness, output: Any, problem: str
) -> None:
    async def broken(message: dict[str, Any]) -> Any:
        return [{"payload": 0, "route": message["route"]}, output]

    harness.runtime.behaviour = broken
    await harness.start()
    await harness.send(make_message(["step-a", "step-b"]))
    out = await harness.take("error-end")
    assert out["error"] == "processing_error"
    assert out["error_details"]["type"] == "InvalidOutput"
    assert problem in out["error_details"]["message"]
    assert await harness.depth("step-b") == 0


async def test_nothing_is_consumed_until_the_runtime_socket_accepts(harness: Harness) -> None:
    await harness.runtime.stop()
    await harness.start()
    await harness.send(make_message(["step-a"]))
    await asyncio.sleep(0.5)
    assert await harness.depth(harness.queue) == 1
    assert await harness.depth("error-end") == 0
    await harness.runtime.start()
    out = await harness.take("happy-end")
    assert out["route"]["current"] == 1


async def test_a_vanished_runtime_requeues_the_message_untouched_and_pauses(
    harness: Harness,
) -> None:
    await harness.start()
    await harness.wait_consuming()
    await harness.runtime.stop()
    body = await harness.send(make_message(["step-a"], job_id="j6"))
    await asyncio.sleep(0.6)
    assert await harness.depth("error-end") == 0
    assert await harness.depth("happy-end") == 0
    assert await harness.depth(harness.queue) == 1  # requeued, and nobody consumes it
    assert harness.sidecar is not None
    assert not harness.sidecar.gate.is_open
    await harness.runtime.start()
    out = await harness.take("happy-end")
    assert out["job_id"] == "j6"
    assert orjson.loads(harness.runtime.requests[-1]) == orjson.loads(body)


async def test_an_output_to_a_missing_queue_is_an_unroutable_error(harness: Harness) -> None:
    await harness.start()
    message = make_message(["step-a", "no-such-queue"], payload={"p": 1}, job_id="j7")
    body = await harness.send(message)
    out = await harness.take("error-end")
    assert out["error"] == "unroutable_error"
    assert out["failed_step"] == "step-a"
    assert "no-such-queue" in out["error_details"]["message"]
    assert out["route"] == {"steps": ["step-a", "no-such-queue"], "current": 1, "metadata": {}}
    assert out["payload"] == {"p": 1}
    assert out["original_message"] == body.decode()
    assert out["job_id"] == "j7"


async def test_a_next_step_too_long_to_be_a_queue_name_is_unroutable(harness: Harness) -> None:
    await harness.start()
    await harness.send(make_message(["step-a", "q" * 300], job_id="j11"))
    out = await harness.take("error-end")
    assert out["error"] == "unroutable_error"
    assert "q" * 300 in out["error_details"]["message"]


async def test_an_error_end_queue_deleted_while_running_is_declared_again(
    harness: Harness,
) -> None:
    async def fail(message: dict[str, Any]) -> Any:
        return error_response("processing_error")

    harness.runtime.behaviour = fail
    await harness.start()
    await harness.wait_consuming()
    await harness.client.delete_queue("error-end")

    await harness.send(make_message(["step-a"], job_id="j12"))
    await harness.runtime.wait_requests(1)
    await asyncio.sleep(0.3)  # (taking from error-end below would declare it)
    assert len(harness.runtime.requests) == 1  # processed once, not requeued in a loop
    out = await harness.take("error-end")
    assert out["job_id"] == "j12"
    assert out["error"] == "processing_error"


async def test_a_happy_end_queue_deleted_while_running_is_declared_again(
    harness: Harness,
) -> None:
    await harness.start()
    await harness.wait_consuming()
    await harness.client.delete_queue("happy-end")

    await harness.send(make_message(["step-a"], job_id="j13"))
    await harness.runtime.wait_requests(1)
    await asyncio.sleep(0.3)  # (taking from happy-end below would declare it)
    assert len(harness.runtime.requests) == 1
    assert await harness.depth("error-end") == 0  # not an unroutable_error either
    assert (await harness.take("happy-end"))["job_id"] == "j13"


class FailingPublishes(MemoryTransport):
    """A memory transport whose first ``failures`` publishes fail like a broker hiccup."""

    def __init__(self, broker: str, failures: int) -> None:
        super().__init__(broker)
        self.failures = failures

    async def publish(self, queue: str, body: bytes, *, delay: float = 0.0) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise TransportError("broker hiccup")
        await super().publish(queue, body, delay=delay)


async def test_a_failed_publish_requeues_the_input_and_loses_nothing(harness: Harness) -> None:
    from asya.sidecar.main import Sidecar

    transport = FailingPublishes(harness.settings.transport_url[len("memory://") :], failures=1)
    harness.sidecar = Sidecar(harness.settings, transport=transport)
    harness.task = asyncio.create_task(harness.sidecar.run())
    await harness.send(make_message(["step-a", "step-b"], job_id="j8"))
    out = await harness.take("step-b")
    assert out["job_id"] == "j8"
    assert len(harness.runtime.requests) == 2  # redelivered after the nack
    assert await harness.depth("error-end") == 0


async def test_a_broker_that_keeps_refusing_is_not_hammered_and_nothing_is_lost(
    harness: Harness,
) -> None:
    from asya.sidecar.main import Sidecar

    transport = FailingPublishes(harness.settings.transport_url[len("memory://") :], failures=3)
    harness.sidecar = Sidecar(harness.settings, transport=transport)
    harness.task = asyncio.create_task(harness.sidecar.run())
    await harness.send(make_message(["step-a", "step-b"], job_id="j14"))

    await asyncio.sleep(1.0)  # held 0.5 s, then 1 s, before each redelivery
    assert len(harness.runtime.requests) <= 2, "a refused publish must not be retried at once"
    out = await harness.take("step-b", within=10)  # after holds of 0.5 + 1 + 2 s
    assert out["job_id"] == "j14"
    assert len(harness.runtime.requests) == 4
    assert await harness.depth("error-end") == 0


class SlowPublishes(MemoryTransport):
    """A memory transport whose publishes take ``delay`` seconds, like a distant broker."""

    def __init__(self, broker: str, delay: float) -> None:
        super().__init__(broker)
        self.delay = delay

    async def publish(self, queue: str, body: bytes, *, delay: float = 0.0) -> None:
        await asyncio.sleep(self.delay)
        await super().publish(queue, body, delay=delay)


async def test_prefetch_overlaps_messages_so_throughput_scales(harness: Harness) -> None:
    from asya.sidecar.main import Sidecar

    broker = harness.settings.transport_url[len("memory://") :]
    harness.settings = replace(harness.settings, prefetch=5)
    harness.sidecar = Sidecar(harness.settings, transport=SlowPublishes(broker, 0.4))
    harness.task = asyncio.create_task(harness.sidecar.run())
    await harness.wait_consuming()
    started = time.monotonic()
    for index in range(5):
        await harness.send(make_message(["step-a"], payload={"i": index}))
    seen = {(await harness.take("happy-end"))["payload"]["i"] for _ in range(5)}
    assert seen == set(range(5))
    assert time.monotonic() - started < 1.5  # 5 × 0.4 s one after another would be 2 s


async def test_runtime_calls_are_pipelined_two_deep(harness: Harness) -> None:
    running = 0
    most = 0

    async def slow(message: dict[str, Any]) -> Any:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.05)
        running -= 1
        return [message]

    harness.runtime.serial = False  # count what the sidecar sends at once
    harness.runtime.behaviour = slow
    await harness.start(prefetch=10)
    for index in range(6):
        await harness.send(make_message(["step-a"], payload={"i": index}))
    for _ in range(6):
        await harness.take("happy-end")
    assert most == 2


async def test_waiting_behind_another_call_does_not_count_against_the_timeout(
    harness: Harness,
) -> None:
    async def slow(message: dict[str, Any]) -> Any:
        await asyncio.sleep(0.4)
        return [message]

    harness.runtime.behaviour = slow  # serial, as the real runtime
    await harness.start(prefetch=3, runtime_timeout=0.6)
    for index in range(3):
        await harness.send(make_message(["step-a"], payload={"i": index}))
    seen = {(await harness.take("happy-end"))["payload"]["i"] for _ in range(3)}
    assert seen == {0, 1, 2}
    assert await harness.depth("error-end") == 0


async def test_stop_finishes_the_message_in_flight_then_returns(harness: Harness) -> None:
    async def slow(message: dict[str, Any]) -> Any:
        await asyncio.sleep(0.5)
        return [message]

    harness.runtime.behaviour = slow
    await harness.start()
    await harness.send(make_message(["step-a"], job_id="j9"))
    await harness.runtime.wait_requests()
    await harness.send(make_message(["step-a"], job_id="j10"))
    await harness.stop()
    assert (await harness.take("happy-end"))["job_id"] == "j9"
    assert await harness.depth(harness.queue) == 1  # the second one was never taken
    assert await harness.depth("happy-end") == 0


async def test_stop_while_waiting_for_a_vanished_runtime_returns_at_once(harness: Harness) -> None:
    sidecar = await harness.start()
    await harness.wait_consuming()
    await harness.runtime.stop()
    await harness.send(make_message(["step-a"]))  # finds the runtime gone: consuming pauses
    await asyncio.sleep(0.3)  # the sidecar is waiting for the runtime's socket by now
    time.sleep(0.2)  # noqa: ASYNC251 - holds the loop: the stop lands as the next probe runs
    assert harness.task is not None
    sidecar.stop()
    stopped, _ = await asyncio.wait({harness.task}, timeout=2.0)
    assert stopped, "the sidecar kept waiting for its runtime after stop()"
    assert await harness.depth(harness.queue) == 1


async def test_stop_requeues_taken_messages_whose_runtime_call_has_not_started(
    harness: Harness,
) -> None:
    from asya.sidecar.hooks import Hook, MessageContext
    from asya.sidecar.main import Sidecar

    class SlowStart(Hook):
        async def before_runtime(self, ctx: MessageContext) -> None:
            await asyncio.sleep(0.5)

    harness.settings = replace(harness.settings, prefetch=3)
    harness.sidecar = Sidecar(harness.settings, extra_hooks=(SlowStart(),))
    harness.task = asyncio.create_task(harness.sidecar.run())
    await harness.wait_consuming()
    for index in range(2):
        await harness.send(make_message(["step-a"], payload={"i": index}))
    await asyncio.sleep(0.2)
    await harness.stop()
    assert harness.runtime.requests == []
    assert await harness.depth(harness.queue) == 2
    assert await harness.depth("error-end") == 0


async def test_a_failing_hook_never_loses_the_message(harness: Harness) -> None:
    from asya.sidecar.hooks import Hook, MessageContext
    from asya.sidecar.main import Sidecar

    class Broken(Hook):
        def on_received(self, ctx: MessageContext) -> None:
            raise RuntimeError("boom")

        async def before_publish(self, ctx: MessageContext, succeeded: bool) -> None:
            raise RuntimeError("boom")

    harness.sidecar = Sidecar(harness.settings, extra_hooks=(Broken(),))
    harness.task = asyncio.create_task(harness.sidecar.run())
    await harness.send(make_message(["step-a"]))
    assert (await harness.take("happy-end"))["route"]["current"] == 1


# -- terminal mode -------------------------------------------------------------------------


async def test_a_terminal_actor_routes_nothing_and_acks(harness: Harness) -> None:
    await harness.start(is_terminal=True, queue_name="happy-end-crew")
    await harness.wait_consuming()
    await harness.send(make_message(["step-a"], current=1, job_id="t1"), queue="happy-end-crew")
    await harness.runtime.wait_requests()
    await asyncio.sleep(0.2)
    for queue in ("happy-end", "error-end", "asya-dead-letter", "happy-end-crew"):
        assert await harness.depth(queue) == 0, queue


async def test_a_terminal_actor_retries_any_error_then_dead_letters(harness: Harness) -> None:
    async def fail(message: dict[str, Any]) -> Any:
        return error_response("processing_error")

    harness.runtime.behaviour = fail
    await harness.start(
        is_terminal=True, queue_name="error-end-crew", max_retries=2, retry_backoff=0.02
    )
    message = make_message(["step-a"], current=0, job_id="t2")
    await harness.declare("error-end-crew")
    await harness.send(message, queue="error-end-crew")
    out = await harness.take("asya-dead-letter")
    assert out["error"] == "processing_error"
    assert out["failed_step"] == "error-end-crew"
    assert out["attempts"] == 3
    assert len(harness.runtime.requests) == 3
    assert await harness.depth("error-end") == 0


async def test_a_terminal_actor_dead_letters_an_unparsable_message(harness: Harness) -> None:
    await harness.start(is_terminal=True, queue_name="happy-end-crew")
    await harness.declare("happy-end-crew")
    await harness.send(b"garbage", queue="happy-end-crew")
    out = await harness.take("asya-dead-letter")
    assert out["error"] == "msg_parsing_error"
    assert out["original_message"] == "garbage"
    assert await harness.depth("error-end") == 0


async def test_a_terminal_actor_ignores_an_expired_deadline(harness: Harness) -> None:
    await harness.start(is_terminal=True, queue_name="error-end-crew")
    await harness.declare("error-end-crew")
    message = make_message(["step-a"], current=1, job_id="t3")
    message["route"]["metadata"]["deadline"] = "2000-01-01T00:00:00Z"
    await harness.send(message, queue="error-end-crew")
    await harness.runtime.wait_requests()
    await asyncio.sleep(0.1)
    assert await harness.depth("asya-dead-letter") == 0


async def test_a_terminal_actor_declares_the_dead_letter_queue(harness: Harness) -> None:
    await harness.start(is_terminal=True, queue_name="happy-end-crew")
    await harness.wait_consuming()
    assert await harness.client.depth("asya-dead-letter") == 0  # raises if not declared


async def test_a_terminal_actor_accepts_an_error_end_message_with_a_broken_route(
    harness: Harness,
) -> None:
    async def fail(message: dict[str, Any]) -> Any:
        return error_response("processing_error")

    harness.runtime.behaviour = fail
    await harness.start(
        is_terminal=True, queue_name="error-end-crew", max_retries=1, retry_backoff=0.02
    )
    failed = {
        "job_id": "t4",
        "error": "msg_parsing_error",
        "error_details": {"message": "bad", "type": "X", "traceback": "", "severity": "fatal"},
        "original_message": "{",
        "route": None,
        "payload": None,
        "failed_step": "step-a",
        "attempts": 1,
    }
    await harness.send(failed, queue="error-end-crew")
    out = await harness.take("asya-dead-letter")
    assert len(harness.runtime.requests) == 2  # the crew saw it, and it was retried once
    assert orjson.loads(harness.runtime.requests[0]) == failed
    assert out["attempts"] == 2


async def test_messages_taken_before_the_runtime_vanished_are_all_given_back(
    harness: Harness,
) -> None:
    release = asyncio.Event()

    async def blocked(message: dict[str, Any]) -> Any:
        await release.wait()
        return [message]

    harness.runtime.behaviour = blocked
    await harness.start(prefetch=4)
    await harness.wait_consuming()
    for index in range(4):
        await harness.send(make_message(["step-a"], payload={"i": index}))
    await harness.runtime.wait_requests(1)
    await asyncio.sleep(0.2)  # the second call is sent too, and waits behind the first
    await harness.runtime.stop()
    release.set()
    done = {(await harness.take("happy-end"))["payload"]["i"] for _ in range(2)}
    assert done == {0, 1}  # both had reached the runtime
    await asyncio.sleep(0.5)
    assert await harness.depth(harness.queue) == 2  # the other two: returned, not held
    assert await harness.depth("error-end") == 0
