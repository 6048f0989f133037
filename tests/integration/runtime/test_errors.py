"""Each error code, its severity and its details, as a real runtime answers them."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import pytest

from tests.integration.runtime.rtclient import RuntimeProcess, StartRuntime, message, read_response

HEADER = struct.Struct(">I")
SPEC_CUDA_OOM = "CUDA out of memory. Tried to allocate 400.00 GiB"


def only_error(response: list[dict[str, object]]) -> dict[str, object]:
    assert len(response) == 1, f"an error response has exactly one object, got {response}"
    (error,) = response
    assert set(error) == {"error", "details"}
    return error


def test_handler_exception_is_a_fatal_processing_error(conditional_runtime: RuntimeProcess) -> None:
    error = only_error(conditional_runtime.call(message({"action": "error", "value": 7})))

    assert error["error"] == "processing_error"
    details = error["details"]
    assert isinstance(details, dict)
    assert details["message"] == "invalid value: 7"
    assert details["type"] == "ValueError"
    assert details["severity"] == "fatal"
    assert "retry_after" not in details
    assert 'raise ValueError(f"invalid value' in details["traceback"]


def test_memory_error_is_a_recoverable_oom_error(conditional_runtime: RuntimeProcess) -> None:
    error = only_error(conditional_runtime.call(message({"action": "oom"})))

    assert error["error"] == "oom_error"
    assert error["details"] == {
        "message": "cannot allocate 64 GiB",
        "type": "MemoryError",
        "traceback": error["details"]["traceback"],  # type: ignore[index]
        "severity": "recoverable",
        "retry_after": 30,
    }


def test_cuda_oom_text_is_a_recoverable_cuda_oom_error(conditional_runtime: RuntimeProcess) -> None:
    error = only_error(conditional_runtime.call(message({"action": "cuda_oom_text"})))

    assert error["error"] == "cuda_oom_error"
    details = error["details"]
    assert isinstance(details, dict)
    assert details["type"] == "RuntimeError"
    assert details["message"].startswith(SPEC_CUDA_OOM)
    assert (details["severity"], details["retry_after"]) == ("recoverable", 60)
    # The runtime detects torch without importing it.
    (answer,) = conditional_runtime.call(message({"action": "torch_loaded"}))
    assert answer["payload"] == {"torch_loaded": False}


def test_handler_calling_sys_exit_is_a_processing_error_and_the_worker_lives_on(
    conditional_runtime: RuntimeProcess,
) -> None:
    worker = conditional_runtime.worker_pid()

    error = only_error(conditional_runtime.call(message({"action": "exit"})))

    assert error["error"] == "processing_error"
    assert error["details"]["type"] == "SystemExit"  # type: ignore[index]
    assert conditional_runtime.worker_pid() == worker


@pytest.mark.parametrize("action", ["nan", "set"])
def test_result_json_cannot_express_is_a_processing_error(
    conditional_runtime: RuntimeProcess, action: str
) -> None:
    error = only_error(conditional_runtime.call(message({"action": action})))

    assert error["error"] == "processing_error"
    assert "cannot be encoded as JSON" in error["details"]["message"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("with_text", "cleanup", "emptied"),
    [(True, "true", True), (False, "true", True), (True, "false", False)],
)
def test_torch_out_of_memory_error_empties_the_cuda_cache_when_asked(
    start_runtime: StartRuntime, tmp_path: Path, with_text: bool, cleanup: str, emptied: bool
) -> None:
    runtime = start_runtime("rt_handlers.fake_torch_oom", {"ASYA_CUDA_CLEANUP_ON_OOM": cleanup})
    marker = tmp_path / "empty_cache_called"

    error = only_error(runtime.call(message({"marker": str(marker), "with_text": with_text})))

    assert error["error"] == "cuda_oom_error"
    assert error["details"]["type"] == "OutOfMemoryError"  # type: ignore[index]
    assert error["details"]["retry_after"] == 60  # type: ignore[index]
    assert marker.exists() is emptied


def test_without_oom_detection_out_of_memory_is_a_plain_processing_error(
    start_runtime: StartRuntime, tmp_path: Path
) -> None:
    runtime = start_runtime("rt_handlers.conditional", {"ASYA_ENABLE_OOM_DETECTION": "false"})

    for action in ("oom", "cuda_oom_text"):
        error = only_error(runtime.call(message({"action": action})))
        assert error["error"] == "processing_error"
        assert error["details"]["severity"] == "fatal"  # type: ignore[index]


def test_frame_that_is_not_json_is_a_msg_parsing_error(conditional_runtime: RuntimeProcess) -> None:
    body = b"{not json"

    error = only_error(conditional_runtime.send_raw(HEADER.pack(len(body)) + body))

    assert error["error"] == "msg_parsing_error"
    assert error["details"]["type"] == "JSONDecodeError"  # type: ignore[index]
    assert error["details"]["severity"] == "fatal"  # type: ignore[index]


def test_frame_with_nan_is_a_msg_parsing_error(conditional_runtime: RuntimeProcess) -> None:
    body = b'{"payload": NaN, "route": {"steps": ["a"], "current": 0}}'

    error = only_error(conditional_runtime.send_raw(HEADER.pack(len(body)) + body))

    assert error["error"] == "msg_parsing_error"
    assert "NaN is not valid JSON" in error["details"]["message"]  # type: ignore[index]


def test_frame_that_is_not_utf8_is_a_msg_parsing_error(conditional_runtime: RuntimeProcess) -> None:
    body = b'{"payload": "\xff\xfe"}'

    error = only_error(conditional_runtime.send_raw(HEADER.pack(len(body)) + body))

    assert error["error"] == "msg_parsing_error"


@pytest.mark.parametrize(
    ("request_", "complaint"),
    [
        ({"route": {"steps": ["a"], "current": 0}}, "no 'payload'"),
        ({"payload": 1}, "no 'route'"),
        ({"payload": 1, "route": {"steps": "a", "current": 0}}, "route.steps must be a list"),
        ({"payload": 1, "route": {"steps": ["a", ""], "current": 0}}, "route.steps[1]"),
        ({"payload": 1, "route": {"steps": ["a"], "current": True}}, "must be an integer"),
        ({"payload": 1, "route": {"steps": ["a"], "current": 2}}, "out of range"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_invalid_message_is_a_msg_parsing_error(
    conditional_runtime: RuntimeProcess, request_: object, complaint: str
) -> None:
    error = only_error(conditional_runtime.call(request_))

    assert error["error"] == "msg_parsing_error"
    assert complaint in error["details"]["message"]  # type: ignore[index]


def test_finished_route_is_valid_for_terminal_actors(conditional_runtime: RuntimeProcess) -> None:
    response = conditional_runtime.call(message({"v": 1}, steps=["a", "b"], current=2))

    assert response[0]["payload"] == {"v": 1}


def test_without_validation_a_message_without_route_is_handled(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("rt_handlers.echo", {"ASYA_ENABLE_VALIDATION": "no"})

    assert runtime.call({"payload": {"v": 1}}) == [{"payload": {"v": 1}}]


def test_oversized_frame_is_refused_without_reading_its_body(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("rt_handlers.echo", {"ASYA_MAX_MESSAGE_SIZE": "1000"})

    # Announce 50 MB but send only a few bytes: the answer must come without the rest.
    start = time.monotonic()
    error = only_error(runtime.send_raw(HEADER.pack(50_000_000) + b'{"payload":', timeout=10))

    assert time.monotonic() - start < 5
    assert error["error"] == "msg_parsing_error"
    assert "ASYA_MAX_MESSAGE_SIZE" in error["details"]["message"]  # type: ignore[index]
    assert runtime.call(message("still serving"))[0]["payload"] == "still serving"


def test_twenty_mebibyte_payload_round_trips(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("rt_handlers.echo")
    big = "x" * (20 * 1024 * 1024)

    (output,) = runtime.call(message({"data": big}), timeout=60)

    assert output["payload"]["data"] == big


def test_client_that_stops_mid_frame_gets_a_connection_error(
    conditional_runtime: RuntimeProcess,
) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(15)
        sock.connect(conditional_runtime.socket_path)
        sock.sendall(HEADER.pack(100) + b'{"payload": ')
        sock.shutdown(socket.SHUT_WR)  # no more bytes will come, but we still listen

        error = only_error(read_response(sock))

    assert error["error"] == "connection_error"
    assert error["details"]["severity"] == "fatal"  # type: ignore[index]
    assert "after 12 of 100 body bytes" in error["details"]["message"]  # type: ignore[index]


def test_half_a_frame_then_disconnect_does_not_disturb_serving(
    conditional_runtime: RuntimeProcess,
) -> None:
    worker = conditional_runtime.worker_pid()
    for partial in (b"\x00\x00", HEADER.pack(100) + b'{"pay'):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(conditional_runtime.socket_path)
            sock.sendall(partial)

    assert conditional_runtime.call(message({"v": "next"}))[0]["payload"] == {"v": "next"}
    assert conditional_runtime.worker_pid() == worker


def test_readiness_probe_is_ignored_quietly(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("rt_handlers.echo")
    for _ in range(3):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(runtime.socket_path)

    assert runtime.call(message("after probes"))[0]["payload"] == "after probes"
    logs = runtime.logs()
    assert "WARNING" not in logs, logs
    assert "ERROR" not in logs, logs
