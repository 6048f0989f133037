"""Black-box plumbing for the suite: the actor processes and the test's view of the mesh.

``Processes`` starts ``asya actor`` / ``asya runtime`` / ``asya sidecar`` with their output in
log files, and always stops what it started (its own process groups, never anything else).
``Mesh`` bundles this run's queue names, the broker and the two terminal inboxes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers import asya_command, child_env, free_port
from tests.integration.sidecar_vs_runtime.broker import Broker, Inbox

log = logging.getLogger(__name__)

SUITE_DIR = Path(__file__).resolve().parent

# Linux: ask for SIGTERM when the test process dies (even by SIGKILL), then exec the command.
# The setting survives exec, so an interrupted run never leaves actors behind. (Popen's
# preexec_fn would do the same but is unsafe with the broker's background thread.)
_EXEC_WITH_PARENT_DEATH_SIGNAL = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit('the test run ended before this process started')\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


@dataclass
class Proc:
    """One started process (its own process group) and the file holding its output."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, signum: int) -> None:
        if self.alive():
            os.kill(self.pid, signum)

    def kill9(self) -> None:
        """SIGKILL this process alone (its children, if any, are left to fend for themselves)."""
        self.signal(signal.SIGKILL)
        self.popen.wait(10)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)


@dataclass
class SuiteConfig:
    """Names this run uses on the shared broker, and where its files go."""

    rabbitmq_url: str
    exchange: str
    prefix: str
    log_dir: Path
    socket_dir: Path  # short, for the 108-byte limit on Unix socket paths
    happy_end: str = ""
    error_end: str = ""

    def __post_init__(self) -> None:
        self.happy_end = self.happy_end or self.q("happy-end")
        self.error_end = self.error_end or self.q("error-end")

    def q(self, name: str) -> str:
        """This run's name for queue ``name``."""
        return f"{self.prefix}{name}"

    def socket_path(self, name: str) -> str:
        return str(self.socket_dir / f"{name}.sock")

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for an actor process: this run's broker names, metrics on a free port."""
        env = child_env()
        env["PYTHONPATH"] = os.pathsep.join([str(SUITE_DIR), env["PYTHONPATH"]])
        env.update(
            {
                "ASYA_RABBITMQ_URL": self.rabbitmq_url,
                "ASYA_TRANSPORT_URL": self.rabbitmq_url,
                "ASYA_RABBITMQ_EXCHANGE": self.exchange,
                "ASYA_STEP_HAPPY_END": self.happy_end,
                "ASYA_STEP_ERROR_END": self.error_end,
                "ASYA_METRICS_ADDR": f"127.0.0.1:{free_port()}",
            }
        )
        for stale in ("ASYA_HANDLER", "ASYA_QUEUE_NAME", "ASYA_GATEWAY_URL"):
            env.pop(stale, None)
        if extra:
            env.update(extra)
        return env


@dataclass
class Processes:
    """Starts processes for a fixture and stops all of them (and their groups) at the end."""

    config: SuiteConfig
    started: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> Proc:
        """Start ``argv`` in its own process group; it gets SIGTERM if the test run dies."""
        log_path = self.config.log_dir / f"{name}.log"
        with open(log_path, "ab") as output:
            popen = subprocess.Popen(
                [sys.executable, "-c", _EXEC_WITH_PARENT_DEATH_SIGNAL, str(os.getpid()), *argv],
                env=dict(env),
                cwd=SUITE_DIR,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(name, popen, log_path)
        self.started.append(proc)
        log.debug("started %s (pid %d): %s", name, popen.pid, " ".join(argv))
        return proc

    def actor(
        self, name: str, handler: str, queue: str, env: Mapping[str, str], *flags: str
    ) -> Proc:
        """``asya actor``: one runtime and one sidecar for ``handlers.<handler>``."""
        argv = asya_command("actor", "--handler", f"handlers.{handler}", "--queue", queue, *flags)
        actor_env = {**env, "ASYA_SOCKET_PATH": self.config.socket_path(name)}
        return self.start(name, argv, actor_env)

    def runtime(self, name: str, handler: str, env: Mapping[str, str]) -> Proc:
        """``asya runtime`` alone, serving ``handlers.<handler>`` on ``socket_path(name)``."""
        runtime_env = {
            **env,
            "ASYA_HANDLER": f"handlers.{handler}",
            "ASYA_SOCKET_PATH": self.config.socket_path(name),
        }
        return self.start(f"{name}-runtime", asya_command("runtime"), runtime_env)

    def sidecar(self, name: str, queue: str, env: Mapping[str, str]) -> Proc:
        """``asya sidecar`` alone, consuming ``queue`` and calling ``socket_path(name)``."""
        sidecar_env = {
            **env,
            "ASYA_QUEUE_NAME": queue,
            "ASYA_SOCKET_PATH": self.config.socket_path(name),
            "ASYA_METRICS_ADDR": f"127.0.0.1:{free_port()}",
        }
        return self.start(f"{name}-sidecar", asya_command("sidecar"), sidecar_env)

    def stop_all(self, grace: float = 10.0) -> None:
        """SIGTERM every group we started, then SIGKILL what is left after ``grace``."""
        for proc in self.started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(5)
        self.started.clear()


def wait_consuming(broker: Broker, procs: Mapping[str, Proc], timeout: float = 90.0) -> None:
    """Wait until every queue in ``procs`` has a consumer; fail with the log of a dead one."""
    pending = dict(procs)
    deadline = time.monotonic() + timeout
    while pending:
        for queue, proc in list(pending.items()):
            if not proc.alive():
                raise AssertionError(
                    f"{proc.name} exited with {proc.popen.returncode} before consuming {queue}:\n"
                    f"{proc.tail()}"
                )
            try:
                if broker.consumers(queue) >= 1:
                    del pending[queue]
            except Exception:  # queue not declared yet by the sidecar
                pass
        if not pending:
            return
        if time.monotonic() > deadline:
            details = "\n\n".join(f"--- {p.name}:\n{p.tail()}" for p in pending.values())
            raise AssertionError(f"no consumer after {timeout} s on {list(pending)}\n{details}")
        time.sleep(0.3)


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


def message(
    steps: list[str],
    payload: Any,
    *,
    current: int = 0,
    metadata: dict[str, Any] | None = None,
    **top_level: Any,
) -> dict[str, Any]:
    """A queue message (docs/reference/message.md)."""
    route: dict[str, Any] = {"steps": steps, "current": current}
    if metadata is not None:
        route["metadata"] = metadata
    return {"route": route, "payload": payload, **top_level}


@dataclass
class Mesh:
    """What a test talks to: this run's queue names, the broker, and the two terminal inboxes."""

    config: SuiteConfig
    broker: Broker
    happy_end: Inbox
    error_end: Inbox

    def q(self, actor: str) -> str:
        """The queue of a suite actor: ``echo`` -> ``<prefix>test-echo-queue``."""
        return self.config.q(f"test-{actor.replace('_', '-')}-queue")

    def route(self, *actors: str) -> list[str]:
        return [self.q(actor) for actor in actors]

    def send(self, steps: list[str], payload: Any, **fields: Any) -> dict[str, Any]:
        """Publish a message to its current step and return it as sent."""
        sent = message(steps, payload, **fields)
        self.broker.publish(steps[sent["route"]["current"]], sent)
        return sent
