"""Connections: several requests on one, one-shot clients beside kept ones, and what a client
waiting on a kept connection sees when the worker dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.integration.runtime.rtclient import (
    HEADER,
    NoResponse,
    RuntimeProcess,
    StartRuntime,
    message,
    read_response,
)


@contextmanager
def connection(runtime: RuntimeProcess) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(15)
        sock.connect(runtime.socket_path)
        yield sock


def send(sock: socket.socket, request: object) -> None:
    body = json.dumps(request).encode()
    sock.sendall(HEADER.pack(len(body)) + body)


def test_one_connection_carries_request_after_request(start_runtime: StartRuntime) -> None:
    runtime = start_runtime("rt_handlers.with_pid")

    with connection(runtime) as sock:
        answers = []
        for number in range(5):
            send(sock, message({"n": number}))
            answers.append(read_response(sock))

    assert [answer[0]["payload"]["payload"]["n"] for answer in answers] == [0, 1, 2, 3, 4]
    assert len({answer[0]["payload"]["pid"] for answer in answers}) == 1  # one worker


def test_a_kept_connection_does_not_hold_up_one_shot_clients(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("rt_handlers.echo")

    with connection(runtime) as kept:
        send(kept, message("first"))
        assert read_response(kept)[0]["payload"] == "first"
        # The kept connection stays open and idle: others are served meanwhile.
        assert runtime.call(message("one-shot"), timeout=5)[0]["payload"] == "one-shot"
        with connection(runtime) as probe:
            probe.close()  # a readiness probe
        send(kept, message("again"))
        assert read_response(kept)[0]["payload"] == "again"


def test_requests_sent_back_to_back_on_one_connection_are_all_answered_in_order(
    start_runtime: StartRuntime,
) -> None:
    runtime = start_runtime("rt_handlers.echo")

    with connection(runtime) as sock:
        for number in range(3):
            send(sock, message(number))
        answers = [read_response(sock)[0]["payload"] for _ in range(3)]

    assert answers == [0, 1, 2]


def test_a_request_waiting_when_the_worker_dies_is_reset_unread_not_ended(
    start_runtime: StartRuntime,
) -> None:
    """What the sidecar relies on to send such a request again: the connection of the call that
    died ends (no response), the one whose request was never read is reset."""
    runtime = start_runtime("rt_handlers.conditional")
    worker = runtime.worker_pid()

    with connection(runtime) as busy, connection(runtime) as waiting:
        send(waiting, message({"warm": True}))  # both connections are now the worker's
        assert read_response(waiting)[0]["payload"] == {"warm": True}
        send(busy, message({"action": "sleep", "seconds": 10}))
        time.sleep(0.3)  # the worker is in the handler
        send(waiting, message({"n": 2}))
        os.kill(worker, signal.SIGKILL)

        with pytest.raises(NoResponse):
            read_response(busy)
        with pytest.raises(ConnectionResetError):
            waiting.recv(1)

    # The same request on a new connection meets the fresh worker.
    assert runtime.call(message({"n": 2}), timeout=10)[0]["payload"] == {"n": 2}
    assert runtime.worker_pid() != worker
