"""Child processes of the mesh: start, prefix their logs, stop, restart with backoff.

Each child runs in its own process group (so a Ctrl-C in the terminal reaches only ``asya up``,
which then stops the children in the right order) and, on Linux, is asked by the kernel to
terminate if ``asya up`` itself dies, so a killed mesh leaves no orphans. A graceful stop
signals the child itself (a runtime or sidecar drains its in-flight message); only when that
times out is the whole group killed, grandchildren (runtime workers) included.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.text import Text

from asya.backoff import Backoff

logger = logging.getLogger("asya.up")

_PALETTE = ("cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta")
_PR_SET_PDEATHSIG = 1
_LINE_LIMIT = 1 << 20


@dataclass(frozen=True)
class ChildSpec:
    """What to run: the prefix its log lines get, the command, its environment and folder."""

    name: str
    argv: list[str]
    env: Mapping[str, str]
    cwd: Path


class LogSink:
    """Writes every child's output, one line at a time, prefixed with the child's name."""

    def __init__(self, stream: TextIO | None = None) -> None:
        out = stream or sys.stdout
        # Redirected to a file, keep tables whole rather than cut at rich's default 80 columns.
        width = None if out.isatty() else 200
        self.console = Console(file=out, highlight=False, soft_wrap=True, width=width)
        self._styles: dict[str, str] = {}
        self._colors = itertools.cycle(_PALETTE)
        self.width = 18

    def style_for(self, group: str) -> str:
        if group not in self._styles:
            self._styles[group] = next(self._colors)
        return self._styles[group]

    def line(self, name: str, text: str, group: str | None = None) -> None:
        self.width = max(self.width, len(name))
        prefix = Text(f"{name:<{self.width}} | ", style=self.style_for(group or name))
        self.console.print(prefix + Text(text))

    def say(self, text: str, style: str = "bold") -> None:
        """A line from ``asya up`` itself (restarts, scaling, failures)."""
        prefix = Text(f"{'asya up':<{self.width}} | ", style="bold")
        self.console.print(prefix + Text(text, style=style))


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when its parent (``asya up``/``actor``) dies."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One running OS process; ``recent`` keeps its last lines for failure reports.

    With a ``sink`` its output is read and written there, prefixed; without one the child
    writes to this process's stdout and stderr directly (``asya actor``: its lines stay as the
    child logged them, e.g. JSON).
    """

    spec: ChildSpec
    sink: LogSink | None = None
    group: str | None = None
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=30))
    _pump: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        self.recent.clear()
        captured = self.sink is not None
        self.process = await asyncio.create_subprocess_exec(
            *self.spec.argv,
            cwd=str(self.spec.cwd),
            env=dict(self.spec.env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE if captured else None,
            stderr=asyncio.subprocess.STDOUT if captured else None,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            limit=_LINE_LIMIT,
        )
        self.started_at = time.monotonic()
        if self.sink is not None:
            self._pump = asyncio.create_task(self._copy_output(self.sink), name=f"log:{self.name}")

    async def _copy_output(self, sink: LogSink) -> None:
        assert self.process is not None and self.process.stdout is not None
        stdout = self.process.stdout
        while True:
            try:
                raw = await stdout.readline()
            except (ValueError, asyncio.LimitOverrunError):
                raw = await stdout.read(_LINE_LIMIT)
            if not raw:
                return
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.recent.append(text)
            sink.line(self.name, text, self.group)

    async def wait(self) -> int:
        """Wait for the process to exit and for its last output line to be written."""
        assert self.process is not None
        code = await self.process.wait()
        if self._pump is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._pump), 2.0)
        return code

    def send(self, sig: int) -> None:
        """Signal the child itself (not its group): it decides how to shut its workers down."""
        if self.running and self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    def kill_group(self) -> None:
        """SIGKILL the child's whole process group (grandchildren included)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def stop(self, grace: float) -> int | None:
        """SIGTERM, wait up to ``grace`` seconds, then kill the group; returns the exit code."""
        if self.process is None:
            return None
        if self.running:
            self.send(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(self.process.wait()), grace)
            except TimeoutError:
                logger.warning("%s did not stop within %.0f s; killing it", self.name, grace)
        # The group may hold grandchildren even after a clean exit; none may outlive the mesh.
        self.kill_group()
        return await self.wait()


class RestartBackoff(Backoff):
    """Restart delays: 0.5 s doubling to ``cap``; reset once a child ran ``healthy_after``."""

    def __init__(self, first: float = 0.5, cap: float = 30.0, healthy_after: float = 10.0) -> None:
        super().__init__(first, cap=cap)
        self.healthy_after = healthy_after

    def next_delay(self, ran_for: float) -> float:
        if ran_for >= self.healthy_after:
            self.reset()
        return self.next()


async def keep_alive(
    child: Child,
    respec: Callable[[], ChildSpec],
    sink: LogSink,
    stopping: Callable[[], bool],
    on_restart: Callable[[], None] = lambda: None,
) -> None:
    """Restart ``child`` with backoff each time it exits, until ``stopping()`` says otherwise."""
    backoff = RestartBackoff()
    while True:
        code = await child.wait()
        if stopping():
            return
        delay = backoff.next_delay(time.monotonic() - child.started_at)
        child.kill_group()
        sink.say(
            f"{child.name} exited with code {code}; restarting in {delay:.1f} s "
            f"(restart {backoff.failures})",
            style="yellow",
        )
        await asyncio.sleep(delay)
        if stopping():
            return
        child.spec = respec()
        try:
            await child.start()
        except OSError as exc:
            sink.say(f"{child.name} could not be started: {exc}", style="red")
        on_restart()
