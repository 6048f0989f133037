"""Small helpers shared by the test suites (no fixtures here: see conftest.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SRC_DIR = REPO_ROOT / "src"
RUNTIME_FILE = SRC_DIR / "asya" / "runtime.py"

# Queue names asya fixes: terminal sidecars, `asya up` and `asya queues apply` declare them on
# the broker whatever exchange or prefix a run uses (see the session hooks in conftest.py).
FIXED_QUEUES = ("happy-end", "error-end", "asya-dead-letter")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> None:
    """Poll ``predicate`` until it returns a truthy value; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: ours, ``src`` importable, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC_DIR), env.get("PYTHONPATH")]))
    env.setdefault("ASYA_LOG_LEVEL", "INFO")
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def asya_command(*args: str) -> list[str]:
    """Run the ``asya`` CLI with the interpreter running the tests."""
    return [sys.executable, "-m", "asya.cli", *args]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def delete_rabbitmq_objects(url: str, exchange: str, queues: list[str], prefix: str = "") -> None:
    """Delete a test's queues and exchange; with ``prefix``, also every broker queue whose name
    starts with it (retry delay queues a sidecar made). Failures are ignored: cleanup goes on."""
    import asyncio
    import contextlib

    import aio_pika

    names = list(queues)
    if prefix:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            listed = subprocess.run(
                ["rabbitmqctl", "list_queues", "-q", "--no-table-headers", "name"],
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            ).stdout.split()
            names += [name for name in listed if name.startswith(prefix) and name not in names]

    async def delete() -> None:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            for name in names:
                with contextlib.suppress(Exception):
                    await channel.queue_delete(name)
            with contextlib.suppress(Exception):
                await channel.exchange_delete(exchange)

    with contextlib.suppress(Exception):
        asyncio.run(delete())


def missing_rabbitmq_queues(url: str, names: Iterable[str]) -> list[str]:
    """Which of ``names`` the broker has no queue for."""
    import asyncio

    import aio_pika

    async def check() -> list[str]:
        missing = []
        async with await aio_pika.connect(url) as connection:
            for name in names:
                channel = await connection.channel()
                try:
                    await channel.declare_queue(name, passive=True)
                    await channel.close()
                except aio_pika.exceptions.ChannelClosed:  # it closes the channel too
                    missing.append(name)
        return missing

    return asyncio.run(check())


def delete_idle_rabbitmq_queues(url: str, names: Iterable[str]) -> None:
    """Delete the queues among ``names`` that hold no message and have no consumer: another
    run may be using the others."""
    import asyncio

    import aio_pika

    async def delete() -> None:
        async with await aio_pika.connect(url) as connection:
            for name in names:
                channel = await connection.channel()
                try:
                    await channel.queue_delete(name, if_unused=True, if_empty=True)
                    await channel.close()
                except aio_pika.exceptions.ChannelClosed:
                    pass  # in use, or already gone: the channel is closed either way

    asyncio.run(delete())
