"""The sidecar's kept runtime connections, in front of our runtime and the original one.

``ThreadedRuntime`` is a small standard-library server: serving one request at a time like the
real runtime, and either keeping each connection open (ours) or answering one request per
connection with ``{payload, route}`` only and closing it (the original runtime).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from asya.runtime import FRAME_HEADER, pack_frame
from asya.sidecar.runtime_client import RuntimeClient, RuntimeCrashed, RuntimeTimeout

from .conftest import Harness, make_message

pytestmark = pytest.mark.timeout(30)

Handler = Callable[[dict[str, Any], "ThreadedRuntime"], Any]


def original_echo(message: dict[str, Any], runtime: ThreadedRuntime) -> Any:
    """What the original runtime answers in payload mode: no job_id, no other field."""
    return [{"payload": message["payload"], "route": message["route"]}]


class ThreadedRuntime:
    def __init__(self, path: str, *, one_shot: bool, handler: Handler = original_echo) -> None:
        self.path = path
        self.one_shot = one_shot
        self.handler = handler
        self.connections = 0  # readiness probes included
        self.requests: list[dict[str, Any]] = []
        self.per_connection: dict[int, int] = {}  # requests on each connection that had one
        self.open: set[socket.socket] = set()
        self._serial = threading.Lock()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> ThreadedRuntime:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(16)
        listener.settimeout(0.05)
        self._listener = listener
        self._spawn(self._accept_loop, listener)
        return self

    def stop(self) -> None:
        """Like a runtime going away: the socket path and every connection are gone."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        for conn in list(self.open):
            self.drop(conn)
        for thread in self._threads:
            thread.join(5)

    def drop(self, conn: socket.socket) -> None:
        """Close ``conn`` as it is (a request waiting on it stays unread)."""
        self.open.discard(conn)
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            self.open.add(conn)
            self._spawn(self._serve, conn, self.connections)

    def _serve(self, conn: socket.socket, number: int) -> None:
        with contextlib.suppress(OSError, ValueError):
            while conn in self.open:
                select.select([conn], [], [])
                with self._serial:  # one request at a time, like the runtime's one worker
                    if conn not in self.open:
                        return
                    header = _read_exactly(conn, FRAME_HEADER.size)
                    if header is None:
                        break
                    (length,) = FRAME_HEADER.unpack(header)
                    message = json.loads(_read_exactly(conn, length) or b"")
                    self.requests.append(message)
                    self.per_connection[number] = self.per_connection.get(number, 0) + 1
                    response = self.handler(message, self)
                    if response is None:  # the "worker" died on this request
                        break
                    conn.sendall(pack_frame(json.dumps(response).encode()))
                if self.one_shot:
                    break
        if conn in self.open:
            self.drop(conn)


def _read_exactly(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


@pytest.fixture
def runtime_path(socket_dir: str) -> str:
    return f"{socket_dir}/threaded.sock"


def request(payload: Any) -> bytes:
    return json.dumps(make_message(["a", "b"], payload=payload)).encode()


async def test_in_front_of_the_original_runtime_each_message_has_its_connection_and_job_id(
    harness: Harness, runtime_path: str
) -> None:
    original = ThreadedRuntime(runtime_path, one_shot=True).start()
    try:
        await harness.start(socket_path=runtime_path)
        for number in range(3):
            await harness.send(
                make_message(["step-a", "step-b"], payload={"n": number}, job_id=f"job-{number}")
            )
        outputs = [await harness.take("step-b") for _ in range(3)]
    finally:
        await harness.stop()
        original.stop()

    assert sorted((out["job_id"], out["payload"]["n"]) for out in outputs) == [
        ("job-0", 0),
        ("job-1", 1),
        ("job-2", 2),
    ]
    assert all(out["route"]["current"] == 1 for out in outputs)
    assert list(original.per_connection.values()) == [1, 1, 1]  # one each, none sent twice


async def test_in_front_of_our_runtime_messages_reuse_the_kept_connections(
    harness: Harness, runtime_path: str
) -> None:
    ours = ThreadedRuntime(runtime_path, one_shot=False).start()
    try:
        await harness.start(socket_path=runtime_path)
        for number in range(10):
            await harness.send(make_message(["step-a", "step-b"], payload={"n": number}))
        outputs = [await harness.take("step-b") for _ in range(10)]
    finally:
        await harness.stop()
        ours.stop()

    assert sorted(out["payload"]["n"] for out in outputs) == list(range(10))
    assert len(ours.requests) == 10
    # One connection per pipelined call at most, whatever the message count.
    assert len(ours.per_connection) <= 2


async def test_the_client_reconnects_when_the_runtime_restarts(runtime_path: str) -> None:
    client = RuntimeClient(runtime_path, timeout=5)
    first = ThreadedRuntime(runtime_path, one_shot=False).start()
    try:
        assert json.loads(await client.call(request(1)))[0]["payload"] == 1
        assert json.loads(await client.call(request(2)))[0]["payload"] == 2
    finally:
        first.stop()  # the kept connection is closed with it
    second = ThreadedRuntime(runtime_path, one_shot=False).start()
    try:
        assert json.loads(await client.call(request(3)))[0]["payload"] == 3
    finally:
        await client.aclose()
        second.stop()

    assert (first.connections, len(first.requests)) == (1, 2)
    assert (second.connections, len(second.requests)) == (1, 1)


async def test_a_timed_out_connection_is_never_reused_and_the_next_call_succeeds(
    runtime_path: str,
) -> None:
    def slow_first(message: dict[str, Any], runtime: ThreadedRuntime) -> Any:
        if message["payload"] == "slow":
            time.sleep(0.5)
        return original_echo(message, runtime)

    runtime = ThreadedRuntime(runtime_path, one_shot=False, handler=slow_first).start()
    client = RuntimeClient(runtime_path, timeout=0.2, recovery=1.0)
    try:
        with pytest.raises(RuntimeTimeout):
            await client.call(request("slow"))
        assert json.loads(await client.call(request("fast")))[0]["payload"] == "fast"
        assert json.loads(await client.call(request("again")))[0]["payload"] == "again"
    finally:
        await client.aclose()
        runtime.stop()

    # The timed-out connection was closed; the next one carried both later calls.
    assert list(runtime.per_connection.values()) == [1, 2]


async def test_a_request_dropped_unread_when_the_worker_dies_is_sent_again_once(
    runtime_path: str,
) -> None:
    """A worker dying on one call closes the pipelined call's connection with its request
    unread: that request meets the next worker, as it did waiting in the backlog."""
    crash_started = threading.Event()
    waiting_sent = threading.Event()

    def die_on_crash(message: dict[str, Any], runtime: ThreadedRuntime) -> Any:
        if message["payload"] != "crash":
            return original_echo(message, runtime)
        crash_started.set()
        waiting_sent.wait(5)
        time.sleep(0.1)  # the pipelined request is in its connection's buffer by now
        for conn in list(runtime.open):  # the worker and every connection it held are gone
            runtime.drop(conn)
        return None

    runtime = ThreadedRuntime(runtime_path, one_shot=False, handler=die_on_crash).start()
    client = RuntimeClient(runtime_path, timeout=5, recovery=1.0)
    try:
        await client.call(request("warm"))  # both calls below go to kept connections
        crash = asyncio.create_task(client.call(request("crash")))
        assert await asyncio.to_thread(crash_started.wait, 5)
        pipelined = asyncio.create_task(client.call(request("next")))
        await asyncio.sleep(0.05)
        waiting_sent.set()
        with pytest.raises(RuntimeCrashed):
            await crash
        assert json.loads(await pipelined)[0]["payload"] == "next"
    finally:
        await client.aclose()
        runtime.stop()

    assert [request["payload"] for request in runtime.requests] == ["warm", "crash", "next"]
