"""Malformed messages: each lands in error-end with msg_parsing_error, and the actor goes on.

A bad message must never be lost, never loop, and never stop the consumer: after every bad
input the test sends a good one to the same queue and waits for it in happy-end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.sidecar_vs_runtime.broker import Broker, Inbox
from tests.integration.sidecar_vs_runtime.checks import assert_error_end, assert_routed_to_end
from tests.integration.sidecar_vs_runtime.conftest import SIZE_LIMIT_BYTES
from tests.integration.sidecar_vs_runtime.harness import (
    Mesh,
    Processes,
    SuiteConfig,
    message,
    wait_consuming,
)

pytestmark = pytest.mark.services

BadBody = Callable[[str, str], Any]  # (test id, this actor's queue) -> bytes or a JSON object

BAD_INPUTS: dict[str, BadBody] = {
    "not-json": lambda tid, q: f"this is not JSON {{{tid}".encode(),
    "truncated-json": lambda tid, q: f'{{"payload": {{"test_id": "{tid}"}}, "route": {{'.encode(),
    "invalid-utf8": lambda tid, q: b'{"payload": "\xff\xfe' + tid.encode() + b'"}',
    "json-array": lambda tid, q: [tid, {"route": {"steps": [q], "current": 0}}],
    "json-string": lambda tid, q: json.dumps(f"just a string {tid}").encode(),
    "no-route": lambda tid, q: {"payload": {"test_id": tid}},
    "no-payload": lambda tid, q: {"route": {"steps": [q], "current": 0}, "test_id": tid},
    "route-not-an-object": lambda tid, q: {"route": [q], "payload": {"test_id": tid}},
    "steps-not-a-list": lambda tid, q: {
        "route": {"steps": q, "current": 0},
        "payload": {"test_id": tid},
    },
    "step-not-a-string": lambda tid, q: {
        "route": {"steps": [q, 42], "current": 0},
        "payload": {"test_id": tid},
    },
    "steps-empty": lambda tid, q: {
        "route": {"steps": [], "current": 0},
        "payload": {"test_id": tid},
    },
    "step-an-empty-string": lambda tid, q: {
        "route": {"steps": [q, ""], "current": 0},
        "payload": {"test_id": tid},
    },
    "current-out-of-range": lambda tid, q: {
        "route": {"steps": [q], "current": 5},
        "payload": {"test_id": tid},
    },
    "current-negative": lambda tid, q: {
        "route": {"steps": [q], "current": -1},
        "payload": {"test_id": tid},
    },
    "current-equal-to-length": lambda tid, q: {
        "route": {"steps": [q], "current": 1},
        "payload": {"test_id": tid},
    },
    "current-a-boolean": lambda tid, q: {
        "route": {"steps": [q], "current": True},
        "payload": {"test_id": tid},
    },
    "current-a-string": lambda tid, q: {
        "route": {"steps": [q], "current": "0"},
        "payload": {"test_id": tid},
    },
    "current-missing": lambda tid, q: {"route": {"steps": [q]}, "payload": {"test_id": tid}},
}


def _send_good_message_and_expect_it(mesh: Mesh, queue_actor: str, tid: str) -> None:
    good = mesh.send(mesh.route(queue_actor), {"test_id": tid, "good": True})
    [out] = mesh.happy_end.expect(tid, timeout=20)
    assert_routed_to_end(out, good, good["payload"])


@pytest.mark.parametrize("kind", list(BAD_INPUTS))
def test_a_bad_message_goes_to_error_end_as_msg_parsing_error_and_consuming_continues(
    mesh: Mesh, tid: str, kind: str
) -> None:
    queue = mesh.q("echo")
    bad = BAD_INPUTS[kind](tid, queue)
    body = bad if isinstance(bad, bytes) else json.dumps(bad).encode()
    mesh.broker.publish(queue, body)

    [received] = mesh.error_end.wait_for(tid, timeout=20)

    out = received.data
    assert out["error"] == "msg_parsing_error", out
    assert out["error_details"]["severity"] == "fatal"
    assert out["error_details"]["message"]
    if kind != "invalid-utf8":  # bytes that are not UTF-8 cannot be carried verbatim in JSON
        assert out["original_message"] == body.decode()
    assert out["failed_step"] == queue
    assert mesh.happy_end.matching(tid) == []

    _send_good_message_and_expect_it(mesh, "echo", tid)
    assert len(mesh.error_end.matching(tid)) == 1, "the bad message was processed twice"


def test_a_message_over_the_runtime_size_limit_is_a_msg_parsing_error(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid, "blob": "x" * (SIZE_LIMIT_BYTES * 2)}
    sent = mesh.send(mesh.route("size_limit"), payload)

    [out] = mesh.error_end.expect(tid, timeout=20)

    assert_error_end(
        out, sent, code="msg_parsing_error", failed_step=mesh.q("size_limit"), severity="fatal"
    )
    _send_good_message_and_expect_it(mesh, "size_limit", tid)


def test_a_message_just_under_the_runtime_size_limit_is_processed(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid, "blob": "y" * (SIZE_LIMIT_BYTES // 2)}
    sent = mesh.send(mesh.route("size_limit"), payload)

    [out] = mesh.happy_end.expect(tid)

    assert_routed_to_end(out, sent, payload)


def test_unknown_top_level_fields_and_metadata_are_kept(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid}
    sent = mesh.send(
        mesh.route("echo", "echo"),
        payload,
        metadata={"tenant": "acme", "nested": {"a": [1, None]}},
        job_id=f"job-{tid}",
        headers={"x-trace": "abc"},
        version=2,
    )

    [out] = mesh.happy_end.expect(tid)

    assert_routed_to_end(out, sent, payload)
    assert out["route"]["metadata"]["tenant"] == "acme"
    assert out["route"]["metadata"]["nested"] == {"a": [1, None]}


def test_a_step_naming_another_queue_is_only_a_warning(mesh: Mesh, tid: str) -> None:
    # The message sits in echo's queue but its current step names the unicode queue.
    sent_payload = {"test_id": tid}
    message = {
        "route": {"steps": mesh.route("unicode"), "current": 0},
        "payload": sent_payload,
    }
    mesh.broker.publish(mesh.q("echo"), message)

    [out] = mesh.happy_end.expect(tid)

    assert out["payload"] == sent_payload
    assert out["route"]["current"] == 1


def test_a_next_step_too_long_to_be_a_queue_name_goes_to_error_end_without_blocking(
    suite: SuiteConfig,
    broker: Broker,
    happy_end: Inbox,
    error_end: Inbox,
    procs: Processes,
    tid: str,
) -> None:
    # AMQP names and routing keys are at most 255 bytes: no such queue can exist. A dedicated
    # actor, so a sidecar that retries the publish forever blocks nobody else's queue.
    queue = suite.q(f"long-step-{tid[2:10]}")
    wait_consuming(broker, {queue: procs.actor(f"long-{tid[2:10]}", "echo", queue, suite.env())})
    impossible = "q" * 300
    sent = message([queue, impossible], {"test_id": tid})
    broker.publish(queue, sent)

    [out] = error_end.expect(tid, timeout=15)

    assert_error_end(out, None, code="unroutable_error", failed_step=queue, attempts=None)
    assert json.loads(out["original_message"]) == sent
    good = message([queue], {"test_id": tid, "good": True})
    broker.publish(queue, good)
    [done] = happy_end.expect(tid, timeout=15)
    assert_routed_to_end(done, good, good["payload"])
