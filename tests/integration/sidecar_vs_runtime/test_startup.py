"""Starting and stopping: configuration errors, a sidecar waiting for its runtime, SIGTERM."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import RUNTIME_FILE, asya_command, wait_until
from tests.integration.sidecar_vs_runtime.broker import Broker, Inbox
from tests.integration.sidecar_vs_runtime.checks import assert_routed_to_end
from tests.integration.sidecar_vs_runtime.harness import (
    SUITE_DIR,
    Processes,
    SuiteConfig,
    message,
    wait_consuming,
)

pytestmark = pytest.mark.services


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, cwd=SUITE_DIR, capture_output=True, text=True, timeout=60, check=False
    )


def _is_socket(path: Path) -> bool:
    try:
        return stat.S_ISSOCK(path.stat().st_mode)
    except FileNotFoundError:  # between the stale file's removal and the bind
        return False


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("ASYA_QUEUE_NAME", ""),
        ("ASYA_RUNTIME_TIMEOUT", "five seconds"),
        ("ASYA_MAX_RETRIES", "many"),
        ("ASYA_RABBITMQ_PREFETCH", "-"),
    ],
)
def test_the_sidecar_exits_2_naming_a_missing_or_bad_variable(
    suite: SuiteConfig, variable: str, value: str
) -> None:
    env = suite.env(
        {
            "ASYA_QUEUE_NAME": suite.q("never-consumed"),
            "ASYA_SOCKET_PATH": suite.socket_path("never"),
            variable: value,
        }
    )

    result = _run(asya_command("sidecar"), env)

    assert result.returncode == 2, result.stderr
    assert variable in result.stdout + result.stderr


@pytest.mark.parametrize(
    "handler", ["handlers.no_such_handler", "no_such_module.handler", "handlers.echo; rm -rf /"]
)
def test_the_runtime_exits_1_and_leaves_no_socket_when_the_handler_cannot_load(
    suite: SuiteConfig, handler: str
) -> None:
    socket_path = suite.socket_path("broken-runtime")
    env = suite.env({"ASYA_HANDLER": handler, "ASYA_SOCKET_PATH": socket_path})

    result = _run(asya_command("runtime"), env)

    assert result.returncode == 1, result.stderr
    assert not Path(socket_path).exists()
    assert result.stdout + result.stderr, "the reason must be logged"


def test_the_runtime_file_runs_isolated_over_a_stale_socket_file_with_its_mode(
    suite: SuiteConfig, broker: Broker, happy_end: Inbox, procs: Processes, tid: str
) -> None:
    # As the operator runs it: the bare file, no site-packages, handlers beside the cwd.
    queue = suite.q(f"startup-file-{tid[2:10]}")
    socket_path = Path(suite.socket_path(f"file-{tid[2:10]}"))
    socket_path.write_text("stale")
    env = suite.env(
        {
            "ASYA_HANDLER": "handlers.echo",
            "ASYA_SOCKET_PATH": str(socket_path),
            "ASYA_SOCKET_CHMOD": "0o600",
        }
    )
    procs.start(f"file-{tid[2:10]}-runtime", [sys.executable, "-I", "-S", str(RUNTIME_FILE)], env)
    wait_until(lambda: _is_socket(socket_path), timeout=30, what="the socket")
    assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
    sidecar = procs.sidecar(f"file-{tid[2:10]}", queue, env)
    wait_consuming(broker, {queue: sidecar})
    sent = message([queue], {"test_id": tid})
    broker.publish(queue, sent)

    [out] = happy_end.expect(tid)

    assert_routed_to_end(out, sent, sent["payload"])


def test_a_sidecar_consumes_nothing_until_its_runtime_is_up(
    suite: SuiteConfig,
    broker: Broker,
    happy_end: Inbox,
    error_end: Inbox,
    procs: Processes,
    tid: str,
) -> None:
    queue = suite.q(f"startup-wait-{tid[2:10]}")
    broker.declare_queue(queue)
    sent = message([queue], {"test_id": tid})
    broker.publish(queue, sent)
    env = suite.env()
    sidecar = procs.sidecar("late", queue, env)

    time.sleep(4)
    assert sidecar.alive(), sidecar.tail()
    assert broker.consumers(queue) == 0
    assert broker.depth(queue) == 1
    assert happy_end.matching(tid) == error_end.matching(tid) == []

    procs.runtime("late", "echo", env)
    [out] = happy_end.expect(tid, timeout=60)
    assert_routed_to_end(out, sent, sent["payload"])


def test_sigterm_stops_asya_actor_and_both_children_with_exit_0(
    suite: SuiteConfig, broker: Broker, procs: Processes, tid: str
) -> None:
    queue = suite.q(f"startup-term-{tid[2:10]}")
    actor = procs.actor(f"term-{tid[2:10]}", "echo", queue, suite.env())
    wait_consuming(broker, {queue: actor}, timeout=60)
    children = psutil.Process(actor.pid).children(recursive=True)
    assert len(children) >= 2, "a runtime and a sidecar"

    os.kill(actor.pid, signal.SIGTERM)

    assert actor.wait(30) == 0, actor.tail()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], f"left running: {alive}"
    assert broker.consumers(queue) == 0
