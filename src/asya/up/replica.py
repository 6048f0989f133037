"""One replica of an actor: a runtime and its sidecar as two supervised children.

They run as separate children (not ``asya actor``) so scale-in can drain them in order: the
sidecar gets SIGTERM first, stops consuming and finishes its in-flight message, and only then is
the runtime stopped — no message is lost. The sidecar starts only once the runtime's socket
exists, which is also how a handler that cannot load is told apart from a crash: a runtime that
exits before its socket ever appeared will fail the same way again, so it is reported once
instead of being restarted in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from asya.envconfig import parse_bool
from asya.errors import AsyaError
from asya.up.supervisor import Child, ChildSpec, LogSink, keep_alive

_SOCKET_POLL = 0.05
_SLOW_LOAD_NOTICE = 15.0
_SIDECAR_READY_TIMEOUT = 30.0


def metrics_enabled(env: Mapping[str, str]) -> bool:
    """Whether a sidecar with ``env`` serves /metrics and /health, read as the sidecar reads it.

    Empty means unset (on); a value the sidecar rejects counts as on (it exits naming it).
    """
    raw = env.get("ASYA_METRICS_ENABLED", "").strip()
    try:
        return parse_bool(raw) if raw else True
    except ValueError:
        return True


class RuntimeStartError(AsyaError):
    """The runtime exited before serving: its handler cannot be imported or built."""

    def __init__(self, label: str, code: int, output: list[str]) -> None:
        reason = "\n".join(f"    {line}" for line in output[-12:]) or "    (no output)"
        super().__init__(
            f"the runtime of {label} exited with code {code} before serving:\n{reason}"
        )
        self.label = label
        self.code = code
        self.output = output


@dataclass(frozen=True)
class ReplicaSpec:
    """How to run one replica; ``sidecar_env`` is built at each start (fresh metrics port)."""

    actor: str
    label: str
    cwd: Path
    socket_path: Path
    runtime_argv: list[str]
    runtime_env: Mapping[str, str]
    sidecar_argv: list[str]
    sidecar_env: Callable[[], Mapping[str, str]]
    drain_timeout: float


class Replica:
    """A runtime + sidecar pair that restarts whichever of the two crashes."""

    def __init__(
        self, spec: ReplicaSpec, sink: LogSink, on_restart: Callable[[], None] = lambda: None
    ) -> None:
        self.spec = spec
        self.sink = sink
        self.on_restart = on_restart
        self.runtime = Child(self._runtime_spec(), sink, group=spec.actor)
        self.sidecar: Child | None = None
        self.stopping = False
        self._watchers: list[asyncio.Task[None]] = []

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def metrics_addr(self) -> str | None:
        if self.sidecar is None:
            return None
        if not metrics_enabled(self.sidecar.spec.env):
            return None
        return self.sidecar.spec.env.get("ASYA_METRICS_ADDR")

    def _runtime_spec(self) -> ChildSpec:
        return ChildSpec(
            f"{self.label} runtime",
            self.spec.runtime_argv,
            self.spec.runtime_env,
            self.spec.cwd,
        )

    def _sidecar_spec(self) -> ChildSpec:
        return ChildSpec(
            f"{self.label} sidecar",
            self.spec.sidecar_argv,
            self.spec.sidecar_env(),
            self.spec.cwd,
        )

    async def start(self) -> None:
        """Start the runtime, wait for its socket, then the sidecar.

        Raises RuntimeStartError (with the runtime's output) when the runtime exits first.
        """
        with contextlib.suppress(FileNotFoundError):
            self.spec.socket_path.unlink()
        await self.runtime.start()
        await self._wait_for_socket()
        self.sidecar = Child(self._sidecar_spec(), self.sink, group=self.spec.actor)
        await self.sidecar.start()
        await self._wait_for_sidecar()
        self._watchers = [
            asyncio.create_task(self._watch(self.runtime, self._runtime_spec)),
            asyncio.create_task(self._watch(self.sidecar, self._sidecar_spec)),
        ]

    async def _wait_for_socket(self) -> None:
        started = time.monotonic()
        noticed = False
        while not self.spec.socket_path.exists():
            if not self.runtime.running:
                code = await self.runtime.wait()
                raise RuntimeStartError(self.label, code, list(self.runtime.recent))
            if not noticed and time.monotonic() - started > _SLOW_LOAD_NOTICE:
                self.sink.say(f"{self.label}: still loading its handler…", style="")
                noticed = True
            await asyncio.sleep(_SOCKET_POLL)

    async def _wait_for_sidecar(self) -> None:
        """Wait (bounded) until the sidecar's health endpoint answers, when it has one."""
        addr = self.metrics_addr
        if addr is None or self.sidecar is None:
            return
        deadline = time.monotonic() + _SIDECAR_READY_TIMEOUT
        async with httpx.AsyncClient(timeout=1.0) as client:
            while self.sidecar.running and time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"http://{addr}/health")).status_code == 200:
                        return
                await asyncio.sleep(0.1)

    async def _watch(self, child: Child, respec: Callable[[], ChildSpec]) -> None:
        await keep_alive(child, respec, self.sink, lambda: self.stopping, self.on_restart)

    async def stop(self) -> None:
        """Drain: the sidecar finishes its in-flight message first, then the runtime stops."""
        self.stopping = True
        for watcher in self._watchers:
            watcher.cancel()
        if self.sidecar is not None:
            await self.sidecar.stop(self.spec.drain_timeout)
        await self.runtime.stop(10.0)
        with contextlib.suppress(FileNotFoundError):
            self.spec.socket_path.unlink()
