"""Routes through several actors: advancing, extending, fanning out, unroutable steps."""

from __future__ import annotations

import json

import pytest

from tests.integration.sidecar_vs_runtime import handlers
from tests.integration.sidecar_vs_runtime.checks import assert_error_end, assert_routed_to_end
from tests.integration.sidecar_vs_runtime.harness import Mesh

pytestmark = pytest.mark.services


def test_a_two_step_route_passes_through_both_actors_to_happy_end(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid}
    sent = mesh.send(
        mesh.route("echo", "unicode"), payload, job_id=f"job-{tid}", metadata={"user": "x"}
    )

    [out] = mesh.happy_end.expect(tid)

    assert_routed_to_end(
        out, sent, {**payload, "text": handlers.UNICODE_TEXT, "emoji": handlers.EMOJI}
    )
    assert out["route"]["metadata"]["user"] == "x"


def test_a_three_step_route_applies_each_step_in_order(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid}
    sent = mesh.send(mesh.route("null_values", "nested_data", "echo"), payload)

    [out] = mesh.happy_end.expect(tid)

    assert out["payload"]["null_field"] is None
    assert out["payload"]["nested_depth"] == 20
    assert_routed_to_end(out, sent, out["payload"])


def test_a_route_may_start_in_the_middle(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid}
    sent = mesh.send(mesh.route("error", "echo"), payload, current=1)

    [out] = mesh.happy_end.expect(tid)

    assert_routed_to_end(out, sent, payload)


def test_a_message_mode_handler_extends_the_route_with_new_steps(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid, "append_steps": mesh.route("echo", "unicode")}
    sent = mesh.send(mesh.route("route_extender", "null_values"), payload)

    [out] = mesh.happy_end.expect(tid)

    assert out["route"]["steps"] == mesh.route("route_extender", "echo", "unicode", "null_values")
    assert out["route"]["current"] == 4
    assert out["payload"]["extended_by"] == mesh.q("route_extender")
    assert out["payload"]["emoji"] == handlers.EMOJI
    assert out["payload"]["null_field"] is None
    assert out["payload"]["test_id"] == sent["payload"]["test_id"]


def test_fanout_outputs_are_routed_independently_to_the_next_step(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid, "count": 3}
    sent = mesh.send(mesh.route("fanout", "nested_data"), payload)

    outs = mesh.happy_end.expect(tid, count=3)

    assert sorted(out["payload"]["index"] for out in outs) == [0, 1, 2]
    for out in outs:
        assert out["payload"]["nested_depth"] == 20
        assert_routed_to_end(out, sent, out["payload"])


def test_an_empty_response_midway_ends_the_route_with_the_original_message(
    mesh: Mesh, tid: str
) -> None:
    # Had the message gone on to echo, its payload would have become {"echoed": ...}.
    sent = mesh.send(
        mesh.route("empty_response", "echo"), {"test_id": tid, "message": "must not be echoed"}
    )

    [out] = mesh.happy_end.expect(tid)

    assert out == sent


def test_a_next_step_whose_queue_does_not_exist_sends_unroutable_error(
    mesh: Mesh, tid: str
) -> None:
    missing = mesh.config.q("no-such-queue")
    payload = {"test_id": tid}
    sent = mesh.send([mesh.q("echo"), missing], payload)

    [out] = mesh.error_end.expect(tid, timeout=20)

    details = assert_error_end(
        out, None, code="unroutable_error", failed_step=mesh.q("echo"), attempts=None
    )
    assert missing in details["message"]
    assert json.loads(out["original_message"]) == sent
    assert out["route"]["steps"] == sent["route"]["steps"]
    assert out["payload"] == payload

    # The actor goes on consuming after it.
    ok = mesh.send(mesh.route("echo"), {"test_id": tid, "after": True})
    [done] = mesh.happy_end.expect(tid)
    assert_routed_to_end(done, ok, ok["payload"])


def test_one_unroutable_fanout_output_does_not_lose_the_others(mesh: Mesh, tid: str) -> None:
    missing = mesh.config.q("no-such-queue-either")
    payload = {"test_id": tid, "count": 2}
    mesh.send([mesh.q("fanout"), missing], payload)

    outs = mesh.error_end.expect(tid, count=2, timeout=20)

    assert {out["error"] for out in outs} == {"unroutable_error"}
    assert sorted(out["payload"]["index"] for out in outs) == [0, 1]


def test_a_message_mode_handler_fans_out_messages_with_their_own_routes(
    mesh: Mesh, tid: str
) -> None:
    payload = {"test_id": tid, "split_into": [mesh.route("unicode"), mesh.route("nested_data")]}
    mesh.send(mesh.route("route_extender"), payload, job_id=f"job-{tid}")

    outs = sorted(mesh.happy_end.expect(tid, count=2), key=lambda out: out["payload"]["branch"])

    assert outs[0]["route"]["steps"] == mesh.route("route_extender", "unicode")
    assert outs[0]["payload"]["emoji"] == handlers.EMOJI
    assert outs[1]["route"]["steps"] == mesh.route("route_extender", "nested_data")
    assert outs[1]["payload"]["nested_depth"] == 20
    for out in outs:
        assert out["route"]["current"] == 2
        assert out["job_id"] == f"job-{tid}"


def test_fields_a_message_mode_handler_leaves_out_are_copied_from_the_input(
    mesh: Mesh, tid: str
) -> None:
    payload = {"test_id": tid, "minimal": True}
    sent = mesh.send(
        mesh.route("route_extender", "echo"), payload, job_id=f"job-{tid}", tenant="acme"
    )

    [out] = mesh.happy_end.expect(tid)

    assert_routed_to_end(out, sent, {**payload, "extended_by": mesh.q("route_extender")})


def test_results_and_errors_are_published_as_persistent_messages(mesh: Mesh, tid: str) -> None:
    mesh.send(mesh.route("echo", "error"), {"test_id": tid})
    mesh.send(mesh.route("echo"), {"test_id": tid})

    [happy] = mesh.happy_end.wait_for(tid)
    [failed] = mesh.error_end.wait_for(tid)

    assert happy.persistent
    assert failed.persistent
