"""Each handler's success path: what lands in happy-end, field by field."""

from __future__ import annotations

import time

import pytest

from tests.integration.sidecar_vs_runtime import handlers
from tests.integration.sidecar_vs_runtime.checks import assert_routed_to_end
from tests.integration.sidecar_vs_runtime.harness import Mesh

pytestmark = pytest.mark.services


def test_echo_returns_the_payload_unchanged(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid, "numbers": [1, 2.5, -3], "flag": True, "nothing": None}
    sent = mesh.send(mesh.route("echo"), payload, trace_id="kept-as-is")

    [out] = mesh.happy_end.expect(tid)

    assert_routed_to_end(out, sent, payload)


def test_echo_with_a_message_field_answers_echoed_after_half_a_second(mesh: Mesh, tid: str) -> None:
    started = time.monotonic()
    sent = mesh.send(mesh.route("echo"), {"message": f"hello {tid}"})

    [out] = mesh.happy_end.expect(tid)

    assert time.monotonic() - started >= 0.5
    assert_routed_to_end(out, sent, {"echoed": f"hello {tid}"})


@pytest.mark.parametrize("kind", ["string", "number"])
def test_echo_keeps_a_payload_that_is_not_an_object(mesh: Mesh, tid: str, kind: str) -> None:
    payload = f"plain text {tid}" if kind == "string" else 42.5
    sent = mesh.send(mesh.route("echo"), payload, test_id=tid)

    [out] = mesh.happy_end.expect(tid)

    assert_routed_to_end(out, sent, payload)


def test_a_handler_returning_a_list_fans_out_one_message_per_item(mesh: Mesh, tid: str) -> None:
    items = [f"{tid}-first", {"id": tid}, [tid]]  # a list item stays one output
    sent = mesh.send(mesh.route("echo"), items)

    outs = mesh.happy_end.expect(tid, count=3)

    assert sorted((out["payload"] for out in outs), key=repr) == sorted(items, key=repr)
    for out in outs:
        assert_routed_to_end(out, sent, out["payload"])


def test_numbers_at_the_64_bit_limits_and_fractions_arrive_exactly(mesh: Mesh, tid: str) -> None:
    numbers = [2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1, 0, -0.0, 0.1, 1e-7, 1.5e308, -2.5]
    payload = {"test_id": tid, "numbers": numbers}
    sent = mesh.send(mesh.route("echo"), payload)

    [out] = mesh.happy_end.expect(tid)

    assert_routed_to_end(out, sent, payload)
    assert [type(n) for n in out["payload"]["numbers"]] == [type(n) for n in numbers]


def test_integers_beyond_64_bits_arrive_exactly(mesh: Mesh, tid: str) -> None:
    numbers = [2**64, -(2**70), 10**30 + 7]
    payload = {"test_id": tid, "numbers": numbers}
    sent = mesh.send(mesh.route("echo"), payload)

    [out] = mesh.happy_end.expect(tid)

    assert out["payload"]["numbers"] == numbers
    assert all(type(n) is int for n in out["payload"]["numbers"])
    assert_routed_to_end(out, sent, payload)


def test_error_handler_with_should_fail_false_succeeds(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid, "should_fail": False}
    sent = mesh.send(mesh.route("error"), payload)

    [out] = mesh.happy_end.expect(tid)

    assert_routed_to_end(out, sent, {**payload, "status": "ok"})
    assert mesh.error_end.matching(tid) == []


def test_fanout_of_ten_puts_ten_messages_with_indexes_0_to_9_in_happy_end(
    mesh: Mesh, tid: str
) -> None:
    payload = {"test_id": tid, "count": 10}
    sent = mesh.send(mesh.route("fanout"), payload)

    outs = mesh.happy_end.expect(tid, count=10)

    assert sorted(out["payload"]["index"] for out in outs) == list(range(10))
    for out in outs:
        assert_routed_to_end(out, sent, {**payload, "index": out["payload"]["index"]})


def test_a_generator_handler_fans_out_one_message_per_item(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid, "count": 4, "as_generator": True}
    mesh.send(mesh.route("fanout"), payload)

    outs = mesh.happy_end.expect(tid, count=4)

    assert sorted(out["payload"]["index"] for out in outs) == [0, 1, 2, 3]


@pytest.mark.parametrize("return_list", [False, True], ids=["none", "empty-list"])
def test_empty_response_sends_the_original_message_to_happy_end(
    mesh: Mesh, tid: str, return_list: bool
) -> None:
    payload = {"test_id": tid, "return_list": return_list}
    sent = mesh.send(mesh.route("empty_response"), payload, job_ref="kept")

    [out] = mesh.happy_end.expect(tid)

    assert out == sent  # route unchanged: current still 0


def test_large_payload_of_5_mib_arrives_byte_for_byte(mesh: Mesh, tid: str) -> None:
    size_kb = 5 * 1024
    payload = {"test_id": tid, "size_kb": size_kb}
    sent = mesh.send(mesh.route("large_payload"), payload)

    [received] = mesh.happy_end.wait_for(tid, timeout=60)

    out = received.data
    assert len(out["payload"]["data"]) == size_kb * 1024
    assert out["payload"]["data"] == handlers.make_blob(size_kb * 1024)
    assert_routed_to_end(
        out, sent, {**payload, "data": out["payload"]["data"], "data_size_kb": 5120}
    )


def test_a_5_mib_input_passes_through_echo_unchanged(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid, "blob": handlers.make_blob(5 * 1024 * 1024)}
    sent = mesh.send(mesh.route("echo"), payload)

    [received] = mesh.happy_end.wait_for(tid, timeout=60)

    assert_routed_to_end(received.data, sent, payload)


def test_unicode_text_in_several_scripts_arrives_unchanged(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid, "input": "Größe café naïve 日本語 😀"}
    sent = mesh.send(mesh.route("unicode"), payload)

    [received] = mesh.happy_end.wait_for(tid)

    received.body.decode("utf-8")  # strictly valid UTF-8
    out = received.data
    assert out["payload"]["text"] == {
        "chinese": "你好世界",
        "japanese": "こんにちは世界",
        "korean": "안녕하세요 세계",
        "arabic": "مرحبا بالعالم",
        "hebrew": "שלום עולם",
        "russian": "Привет, мир",
        "greek": "Γειά σου Κόσμε",
        "hindi": "नमस्ते दुनिया",
        "thai": "สวัสดีชาวโลก",
        "combining": "e\u0301 n\u0303 a\u030a",
        "controls": "tab\there\nnewline \u2028 line-sep \u200b zero-width \u200f rtl-mark",
        "quotes": "\"double\" 'single' \\backslash\\ </script>",
    }
    assert out["payload"]["emoji"] == "🚀🎉👍🏽👨‍👩‍👧‍👦🇺🇦"
    assert_routed_to_end(
        out, sent, {**payload, "text": handlers.UNICODE_TEXT, "emoji": handlers.EMOJI}
    )


def test_null_values_survive_at_every_depth(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid, "given_null": None}
    sent = mesh.send(mesh.route("null_values"), payload)

    [out] = mesh.happy_end.expect(tid)

    assert out["payload"] == {
        "test_id": tid,
        "given_null": None,
        "null_field": None,
        "nested": {"null": None, "list": [None, 1, None], "deep": {"deeper": {"value": None}}},
        "list_of_nulls": [None, None],
        "empty_string": "",
        "zero": 0,
        "false": False,
        "empty_list": [],
        "empty_dict": {},
    }
    assert_routed_to_end(out, sent, out["payload"])


def test_a_null_payload_echoed_back_is_an_empty_response(mesh: Mesh, tid: str) -> None:
    sent = mesh.send(mesh.route("echo", "unicode"), None, test_id=tid)

    [out] = mesh.happy_end.expect(tid)

    assert out == sent  # None means "nothing to route": the original, route unchanged


def test_nested_data_keeps_a_20_level_structure(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid}
    sent = mesh.send(mesh.route("nested_data"), payload)

    [out] = mesh.happy_end.expect(tid)

    assert out["payload"]["nested_depth"] == 20
    node, depth = out["payload"]["nested"], 1
    while "child" in node:
        assert node["level"] == depth
        node, depth = node["child"], depth + 1
    assert depth == 20
    assert node == {"level": 20, "leaf": True, "values": [20, None, "deepest"]}
    assert_routed_to_end(
        out, sent, {**payload, "nested": handlers.nested_structure(), "nested_depth": 20}
    )


def test_conditional_success_returns_the_result(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid, "action": "success"}
    sent = mesh.send(mesh.route("conditional"), payload)

    [out] = mesh.happy_end.expect(tid)

    assert_routed_to_end(out, sent, {**payload, "result": "success"})


def test_conditional_slow_finishes_within_its_timeout(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid, "action": "slow", "sleep": 1.0}
    started = time.monotonic()
    sent = mesh.send(mesh.route("conditional"), payload)

    [out] = mesh.happy_end.expect(tid)

    assert time.monotonic() - started >= 1.0
    assert_routed_to_end(out, sent, {**payload, "result": "slow"})


def test_conditional_fanout_sends_three_messages(mesh: Mesh, tid: str) -> None:
    payload = {"test_id": tid, "action": "fanout"}
    mesh.send(mesh.route("conditional"), payload)

    outs = mesh.happy_end.expect(tid, count=handlers.FANOUT_ACTION_COUNT)

    assert sorted(out["payload"]["index"] for out in outs) == [0, 1, 2]


def test_conditional_empty_sends_the_original_message(mesh: Mesh, tid: str) -> None:
    sent = mesh.send(mesh.route("conditional"), {"test_id": tid, "action": "empty"})

    [out] = mesh.happy_end.expect(tid)

    assert out == sent
