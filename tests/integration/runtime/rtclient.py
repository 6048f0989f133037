"""A tiny client of the runtime socket and a handle on a runtime subprocess, for the tests."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil

from tests.helpers import RUNTIME_FILE, child_env, stop_process, wait_until

HANDLER_DIR = Path(__file__).resolve().parent
HEADER = struct.Struct(">I")


class NoResponse(Exception):
    """The runtime closed the connection without sending a response frame."""


def message(
    payload: Any = None, steps: Sequence[str] = ("a", "b"), current: int = 0, **extra: Any
) -> dict[str, Any]:
    return {
        "route": {"steps": list(steps), "current": current, "metadata": {}},
        "payload": payload,
        **extra,
    }


def send_raw(path: str, data: bytes, timeout: float = 15.0) -> list[Any]:
    """Send ``data`` as is (a frame, or a broken one) and read the response array."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(data)
        return read_response(sock)


def call(path: str, request: Any, timeout: float = 15.0) -> list[Any]:
    """Frame ``request`` as JSON, send it, return the decoded response."""
    body = json.dumps(request).encode()
    return send_raw(path, HEADER.pack(len(body)) + body, timeout)


def read_response(sock: socket.socket) -> list[Any]:
    header = _read_exactly(sock, HEADER.size)
    (length,) = HEADER.unpack(header)
    response = json.loads(_read_exactly(sock, length))
    assert isinstance(response, list), f"the response must be a JSON array, got {response!r}"
    return response


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:
        chunk = sock.recv(min(size - len(buffer), 1 << 20))
        if not chunk:
            if not buffer:
                raise NoResponse("connection closed without a response frame")
            raise AssertionError(f"truncated frame: {len(buffer)} of {size} bytes")
        buffer += chunk
    return bytes(buffer)


class RuntimeProcess:
    """A runtime started as a subprocess, logging to a file the test can read."""

    def __init__(
        self,
        handler: str,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        cwd: Path = HANDLER_DIR,
    ) -> None:
        self.folder = tempfile.mkdtemp(prefix="asya-rt-")  # short: socket paths are limited
        self.log_path = Path(self.folder) / "runtime.log"
        variables = {"ASYA_HANDLER": handler, "ASYA_SOCKET_PATH": f"{self.folder}/app.sock"}
        variables.update(env or {})
        self.socket_path = variables["ASYA_SOCKET_PATH"]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            list(command or [sys.executable, str(RUNTIME_FILE)]),
            env=child_env(variables),
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 20.0) -> RuntimeProcess:
        wait_until(
            lambda: self.is_serving() or self.proc.poll() is not None,
            timeout=timeout,
            what="the runtime socket",
        )
        assert self.proc.poll() is None, f"runtime exited early:\n{self.logs()}"
        return self

    def is_serving(self) -> bool:
        """The socket file is there (a stale regular file does not count)."""
        try:
            return stat.S_ISSOCK(os.stat(self.socket_path).st_mode)
        except FileNotFoundError:
            return False

    def call(self, request: Any, timeout: float = 15.0) -> list[Any]:
        return call(self.socket_path, request, timeout)

    def send_raw(self, data: bytes, timeout: float = 15.0) -> list[Any]:
        return send_raw(self.socket_path, data, timeout)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def workers(self) -> list[int]:
        """Pids of the runtime's live worker processes (zombies not yet reaped excluded)."""
        try:
            children = psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []
        live = []
        for child in children:
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    live.append(child.pid)
            except psutil.NoSuchProcess:
                pass
        return live

    def worker_pid(self, timeout: float = 10.0) -> int:
        """The one worker's pid, waiting while a replacement starts."""
        wait_until(lambda: len(self.workers()) == 1, timeout=timeout, what="exactly one worker")
        (pid,) = self.workers()
        return pid

    def signal(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = 15.0) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> int:
        children = []
        with contextlib.suppress(psutil.NoSuchProcess):
            children = psutil.Process(self.proc.pid).children(recursive=True)
        code = stop_process(self.proc)
        for child in children:  # never leave a worker behind, even when a test failed
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        self._log.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        return code


def run_to_exit(
    handler: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 20.0,
    command: Sequence[str] | None = None,
) -> tuple[int, str, list[str]]:
    """Run a runtime expected to exit by itself: (exit code, its log, files it left behind)."""
    runtime = RuntimeProcess(handler, env, command)
    try:
        code = runtime.proc.wait(timeout)
        left = sorted(name for name in os.listdir(runtime.folder) if name != "runtime.log")
        return code, runtime.logs(), left
    finally:
        runtime.stop()


def wait_for_log(runtime: RuntimeProcess, text: str, timeout: float = 10.0) -> None:
    wait_until(lambda: text in runtime.logs(), timeout=timeout, what=f"log line {text!r}")


def elapsed_since(start: float) -> float:
    return time.monotonic() - start


StartRuntime = Callable[..., RuntimeProcess]
"""The ``start_runtime`` fixture: ``start(handler, env=None, command=None, wait=True)``."""
