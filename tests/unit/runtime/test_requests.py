"""Request handling in process: handler results become response arrays
(docs/reference/runtime-protocol.md#request-and-response)."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from asya.runtime import (
    HandlerCaller,
    RuntimeConfig,
    Worker,
    encode_response,
    pack_frame,
    process_request,
    shape_outputs,
    shared_memory,
)

PAYLOAD_MODE = RuntimeConfig(handler="m.f")
MESSAGE_MODE = RuntimeConfig(handler="m.f", mode="message")
ROUTE = {"steps": ["a", "b"], "current": 0}


def run(handler: Callable[[Any], Any], request: Any, config: RuntimeConfig = PAYLOAD_MODE) -> Any:
    body = json.dumps(request).encode()
    caller = HandlerCaller(handler)
    try:
        return json.loads(encode_response(process_request(body, caller, config)))
    finally:
        caller.close()


def outputs_of(handler: Callable[[Any], Any], argument: Any) -> list[Any]:
    caller = HandlerCaller(handler)
    try:
        return caller(argument)
    finally:
        caller.close()


def gen(payload: Any) -> Iterator[int]:
    yield from (1, 2, 3)


async def coro(payload: Any) -> dict[str, Any]:
    return {"async": payload}


async def async_gen(payload: Any) -> AsyncIterator[int]:
    for item in (1, 2):
        yield item


async def async_list(payload: Any) -> list[int]:
    return [7, 8]


@pytest.mark.parametrize(
    ("handler", "outputs"),
    [
        (lambda p: {"v": p}, [{"v": 5}]),
        (lambda p: "text", ["text"]),
        (lambda p: 0, [0]),
        (lambda p: [1, 2], [1, 2]),
        (lambda p: (1, 2), [1, 2]),
        (lambda p: [[1, 2]], [[1, 2]]),
        (lambda p: None, []),
        (lambda p: [], []),
        (gen, [1, 2, 3]),
        (coro, [{"async": 5}]),
        (async_gen, [1, 2]),
        (async_list, [7, 8]),
    ],
)
def test_results_become_outputs(handler: Callable[[Any], Any], outputs: list[Any]) -> None:
    assert outputs_of(handler, 5) == outputs


def test_payload_mode_keeps_the_inputs_fields_and_replaces_the_payload() -> None:
    request = {"job_id": "j", "route": ROUTE, "payload": 1, "custom": {"k": "v"}}

    response = run(lambda p: [p + 1, p + 2], request)

    assert response == [{**request, "payload": 2}, {**request, "payload": 3}]


def test_message_mode_merges_left_out_fields_and_the_handlers_fields_win() -> None:
    request = {"job_id": "j", "route": ROUTE, "payload": 1, "custom": "c"}
    outputs = [{"payload": 2, "custom": "changed", "new": True}]

    assert shape_outputs(request, outputs, "message", validation=True) == [
        {"job_id": "j", "route": ROUTE, "payload": 2, "custom": "changed", "new": True}
    ]


def test_message_mode_route_rewrite_is_a_processing_error() -> None:
    request = {"route": {"steps": ["a", "b"], "current": 0}, "payload": 1}

    (error,) = run(
        lambda m: {**m, "route": {"steps": ["z", "b"], "current": 0}}, request, MESSAGE_MODE
    )

    assert error["error"] == "processing_error"
    assert error["details"]["message"].startswith("an actor cannot rewrite the route behind it")
    assert error["details"]["type"] == "OutputError"


def test_handler_failure_is_an_error_response_not_an_exception() -> None:
    def broken(payload: Any) -> Any:
        raise LookupError("missing key")

    (error,) = run(broken, {"route": ROUTE, "payload": 1})

    assert error["error"] == "processing_error"
    assert error["details"]["type"] == "LookupError"
    assert "in broken" in error["details"]["traceback"]
    assert "process_request" not in error["details"]["traceback"], "runtime frames are trimmed"


def test_generator_failing_midway_gives_only_the_error() -> None:
    def half(payload: Any) -> Iterator[int]:
        yield 1
        raise ValueError("second item failed")

    (error,) = run(half, {"route": ROUTE, "payload": 1})

    assert error["error"] == "processing_error"


def test_memory_error_is_answered_as_oom_error() -> None:
    def hungry(payload: Any) -> Any:
        raise MemoryError

    (error,) = run(hungry, {"route": ROUTE, "payload": 1})

    assert error["error"] == "oom_error"
    assert error["details"]["retry_after"] == 30


def test_invalid_json_is_a_msg_parsing_error() -> None:
    (error,) = process_request(b"\x00garbage", HandlerCaller(lambda p: p), PAYLOAD_MODE)

    assert error["error"] == "msg_parsing_error"
    assert error["details"]["type"] in {"JSONDecodeError", "UnicodeDecodeError"}


def test_validation_off_in_payload_mode_still_needs_an_object() -> None:
    config = PAYLOAD_MODE._replace(validation=False)

    (error,) = process_request(b"[1]", HandlerCaller(lambda p: p), config)

    assert error["error"] == "msg_parsing_error"


def test_non_json_result_becomes_a_processing_error() -> None:
    body = encode_response([{"payload": float("inf")}])

    (error,) = json.loads(body)
    assert error["error"] == "processing_error"
    assert "cannot be encoded as JSON" in error["details"]["message"]


def test_encoding_keeps_unicode_intact() -> None:
    value = {"text": "héllo 世界 🚀", "nul": None}

    assert json.loads(encode_response([{"payload": value}])) == [{"payload": value}]


def worker(config: RuntimeConfig = PAYLOAD_MODE) -> Worker:
    a, b = socket.socketpair()
    a.close()
    b.close()
    served = Worker(config, a, shared_memory(), status_fd=-1, lifeline_fd=-1)
    served.call = HandlerCaller(lambda payload: {"echo": payload})
    return served


def read_responses(client: socket.socket) -> list[Any]:
    """Every response frame the client received until the worker closed its end."""
    data = b""
    while chunk := client.recv(1 << 16):
        data += chunk
    responses = []
    while data:
        length = int.from_bytes(data[:4], "big")
        responses.append(json.loads(data[4 : 4 + length]))
        data = data[4 + length :]
    return responses


def test_worker_answers_a_one_shot_client_like_before() -> None:
    # The original sidecar: one frame, then it is done with the connection.
    client, server = socket.socketpair()
    with client, server:
        client.sendall(pack_frame(json.dumps({"route": ROUTE, "payload": 3}).encode()))
        client.shutdown(socket.SHUT_WR)

        worker().serve_connection(server)
        server.close()
        data = client.recv(1 << 16)

    assert json.loads(data[4:]) == [{"route": ROUTE, "payload": {"echo": 3}}]
    assert int.from_bytes(data[:4], "big") == len(data) - 4


def test_worker_serves_several_requests_on_one_connection() -> None:
    client, server = socket.socketpair()
    with client, server:
        for payload in (1, "two", [3]):
            client.sendall(pack_frame(json.dumps({"route": ROUTE, "payload": payload}).encode()))
        client.shutdown(socket.SHUT_WR)

        worker().serve_connection(server)
        server.close()
        responses = read_responses(client)

    assert responses == [
        [{"route": ROUTE, "payload": {"echo": payload}}] for payload in (1, "two", [3])
    ]


def test_a_request_answers_whether_the_connection_stays_open() -> None:
    client, server = socket.socketpair()
    with client, server:
        served = worker()
        client.sendall(pack_frame(json.dumps({"route": ROUTE, "payload": 1}).encode()))
        assert served.serve_request(server) is True  # answered: ready for the next one
        client.sendall(b"\x7f\xff\xff\xff")  # larger than ASYA_MAX_MESSAGE_SIZE
        assert served.serve_request(server) is False  # its body was never read: stream unusable
        client.close()
        assert served.serve_request(server) is False  # the client is gone


def test_worker_drops_a_silent_client_with_a_connection_error() -> None:
    client, server = socket.socketpair()
    with client, server:
        client.sendall(pack_frame(b'{"payload": 1}')[:7])

        worker().serve_connection(server, read_timeout=0.2)
        data = client.recv(1 << 16)

    (error,) = json.loads(data[4:])
    assert error["error"] == "connection_error"
    assert "sent nothing for 0.2 s" in error["details"]["message"]


def test_async_handlers_share_one_event_loop_across_calls() -> None:
    loops = []

    async def remember_loop(payload: Any) -> int:
        import asyncio

        loops.append(asyncio.get_running_loop())
        return len(loops)

    caller = HandlerCaller(remember_loop)
    try:
        assert caller(None) + caller(None) == [1, 2]
    finally:
        caller.close()
    assert loops[0] is loops[1]
