"""Faults: killed sidecars, crashed workers, a restarted broker, SIGTERM, a dead gateway.

Each test starts its own ``asya runtime`` and ``asya sidecar`` (so it can kill one of them)
and asserts that nothing is lost: every message sent reaches happy-end or error-end.
Duplicates are allowed where delivery is at-least-once; they are counted and printed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.helpers import free_port, wait_until
from tests.integration.sidecar_vs_runtime.broker import (
    Broker,
    Inbox,
    rabbitmqctl,
    wait_for_broker,
)
from tests.integration.sidecar_vs_runtime.checks import assert_error_end, assert_routed_to_end
from tests.integration.sidecar_vs_runtime.harness import (
    Proc,
    Processes,
    SuiteConfig,
    message,
    wait_consuming,
)

pytestmark = pytest.mark.services


def start_actor(
    procs: Processes,
    broker: Broker,
    name: str,
    handler: str,
    queue: str,
    env: dict[str, str],
) -> tuple[Proc, Proc]:
    """A runtime and a sidecar as separate processes, consuming once both are up."""
    runtime = procs.runtime(name, handler, env)
    sidecar = procs.sidecar(name, queue, env)
    wait_consuming(broker, {queue: sidecar}, timeout=60)
    return runtime, sidecar


def restart_sidecar(
    procs: Processes, broker: Broker, name: str, queue: str, env: dict[str, str]
) -> Proc:
    sidecar = procs.sidecar(name, queue, env)
    wait_consuming(broker, {queue: sidecar}, timeout=60)
    return sidecar


def wait_all_arrived(inbox: Inbox, tid: str, count: int, timeout: float) -> int:
    """Wait until ``n`` = 0..count-1 all reached ``inbox``; return how many duplicates came."""

    def distinct() -> set[object]:
        return inbox.count_distinct(tid, key=lambda data: data["payload"]["n"])[0]

    deadline = time.monotonic() + timeout
    while len(distinct()) < count and time.monotonic() < deadline:
        time.sleep(0.5)
    seen, total = inbox.count_distinct(tid, key=lambda data: data["payload"]["n"])
    missing = sorted(n for n in range(count) if n not in seen)
    assert not missing, f"{len(missing)} of {count} messages never arrived, e.g. {missing[:10]}"
    return total - count


# --- sidecar killed ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_thousand_messages_all_arrive_although_the_first_sidecar_is_killed_twice(
    suite: SuiteConfig, broker: Broker, happy_end: Inbox, procs: Processes, tid: str
) -> None:
    first, second = suite.q(f"fault-kill-{tid[2:10]}-1"), suite.q(f"fault-kill-{tid[2:10]}-2")
    env = suite.env()
    runtime, sidecar = start_actor(procs, broker, "kill1", "echo", first, env)
    start_actor(procs, broker, "kill2", "echo", second, env)
    total = 1000
    broker.publish_many(
        first, [message([first, second], {"test_id": tid, "n": n}) for n in range(total)]
    )

    for threshold in (700, 300):

        def drained_to(limit: int = threshold) -> bool:
            return broker.depth(first) <= limit

        wait_until(drained_to, timeout=120, what=f"step 1 down to {threshold} queued")
        assert broker.depth(first) > 0, "the queue drained before the kill: nothing was at risk"
        sidecar.kill9()
        sidecar = restart_sidecar(procs, broker, "kill1", first, env)

    duplicates = wait_all_arrived(happy_end, tid, total, timeout=180)
    print(f"\n{total} messages arrived after two sidecar kills; {duplicates} duplicate(s)")
    for data in (item.data for item in happy_end.matching(tid)):
        assert data["route"]["steps"] == [first, second]
        assert data["route"]["current"] == 2
    assert runtime.alive(), "the runtime must outlive its sidecar"


# --- runtime worker crashed -------------------------------------------------------------------


@pytest.mark.parametrize("how", ["sigkill", "segfault"])
def test_a_worker_that_dies_mid_message_gives_runtime_crashed_and_is_replaced(
    suite: SuiteConfig,
    broker: Broker,
    happy_end: Inbox,
    error_end: Inbox,
    procs: Processes,
    tid: str,
    how: str,
) -> None:
    queue = suite.q(f"fault-crash-{tid[2:10]}")
    runtime, _ = start_actor(
        procs, broker, f"crash-{how}", "crash", queue, suite.env({"ASYA_MAX_RETRIES": "0"})
    )
    crashing = message([queue], {"test_id": tid, "how": how})
    broker.publish(queue, crashing)

    [out] = error_end.expect(tid, timeout=30)
    assert_error_end(out, crashing, code="runtime_crashed", failed_step=queue, attempts=1)
    assert out["error_details"]["severity"] == "recoverable"

    fine = message([queue], {"test_id": tid, "crash": False})
    broker.publish(queue, fine)
    [done] = happy_end.expect(tid, timeout=30)
    assert_routed_to_end(done, fine, {"test_id": tid, "crash": False, "crashed": False})
    assert runtime.alive(), "the runtime command must survive its worker"


def test_a_worker_crash_is_retried_and_succeeds_on_the_replacement_worker(
    suite: SuiteConfig,
    broker: Broker,
    happy_end: Inbox,
    error_end: Inbox,
    procs: Processes,
    tid: str,
) -> None:
    queue = suite.q(f"fault-retry-{tid[2:10]}")
    env = suite.env(
        {"ASYA_HANDLER_MODE": "message", "ASYA_MAX_RETRIES": "2", "ASYA_RETRY_BACKOFF": "200ms"}
    )
    start_actor(procs, broker, "crash-once", "crash_once_message", queue, env)
    once = message([queue], {"test_id": f"{tid}-once", "fail_times": 1})
    always = message([queue], {"test_id": f"{tid}-always", "fail_times": 99})
    broker.publish_many(queue, [once, always])

    [out] = happy_end.expect(tid, timeout=30)
    assert out["payload"] == {**once["payload"], "succeeded_on_attempt": 1}
    assert out["route"]["current"] == 1

    # Retries exhausted: error-end after 1 + ASYA_MAX_RETRIES tries, counted.
    [failed] = error_end.expect(tid, timeout=30)
    assert_error_end(
        failed, None, code="runtime_crashed", failed_step=queue, severity="recoverable", attempts=3
    )
    assert failed["payload"] == always["payload"]
    assert failed["route"]["current"] == 0


def test_killing_the_worker_pid_from_outside_gives_runtime_crashed(
    suite: SuiteConfig,
    broker: Broker,
    happy_end: Inbox,
    error_end: Inbox,
    procs: Processes,
    tid: str,
) -> None:
    queue = suite.q(f"fault-extkill-{tid[2:10]}")
    env = suite.env({"ASYA_RUNTIME_TIMEOUT": "60s", "ASYA_MAX_RETRIES": "0"})
    runtime, _ = start_actor(procs, broker, "extkill", "timeout", queue, env)
    marker = Path(suite.socket_dir) / f"{tid}.started"
    busy = message([queue], {"test_id": tid, "sleep": 30, "started_marker": str(marker)})
    broker.publish(queue, busy)

    wait_until(marker.exists, timeout=20, what="the handler to start")
    worker_pid = int(marker.read_text())
    descendants = {p.pid for p in psutil.Process(runtime.pid).children(recursive=True)}
    assert worker_pid in descendants, "the handler must run in a child of the runtime command"
    os.kill(worker_pid, signal.SIGKILL)

    [out] = error_end.expect(tid, timeout=20)
    assert_error_end(out, busy, code="runtime_crashed", failed_step=queue)

    after = message([queue], {"test_id": tid, "sleep": 0})
    broker.publish(queue, after)
    [done] = happy_end.expect(tid, timeout=30)
    assert done["payload"]["slept"] == 0
    assert runtime.alive()


@pytest.mark.slow
def test_a_scheduled_retry_survives_a_sidecar_killed_during_the_delay(
    suite: SuiteConfig,
    broker: Broker,
    happy_end: Inbox,
    error_end: Inbox,
    procs: Processes,
    tid: str,
) -> None:
    queue = suite.q(f"fault-delay-{tid[2:10]}")
    env = suite.env(
        {"ASYA_HANDLER_MODE": "message", "ASYA_MAX_RETRIES": "1", "ASYA_RETRY_BACKOFF": "4s"}
    )
    _, sidecar = start_actor(procs, broker, "delay", "crash_once_message", queue, env)
    marker = Path(suite.socket_dir) / f"{tid}.crashed"
    sent = message([queue], {"test_id": tid, "fail_times": 1, "started_marker": str(marker)})
    broker.publish(queue, sent)
    wait_until(marker.exists, timeout=20, what="the first attempt to crash")
    time.sleep(1)  # the retry is scheduled (4 s backoff) when the sidecar dies

    sidecar.kill9()
    time.sleep(1)
    restart_sidecar(procs, broker, "delay", queue, env)

    [out] = happy_end.expect(tid, timeout=40)
    assert out["payload"]["succeeded_on_attempt"] >= 1
    assert error_end.matching(tid) == []


# --- broker restarted -------------------------------------------------------------------------


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(rabbitmqctl(*args), check=True, capture_output=True, timeout=120)


@pytest.mark.slow
@pytest.mark.serial  # restarts the machine's RabbitMQ, under every other test's feet
@pytest.mark.timeout(300)
def test_the_sidecar_reconnects_after_a_broker_restart_and_all_500_messages_arrive(
    suite: SuiteConfig, broker: Broker, happy_end: Inbox, procs: Processes, tid: str
) -> None:
    if shutil.which("rabbitmqctl") is None or os.geteuid() != 0:
        pytest.skip("restarting the broker needs rabbitmqctl and root")
    queue = suite.q(f"fault-restart-{tid[2:10]}")
    runtime, sidecar = start_actor(procs, broker, "restart", "timeout", queue, suite.env())
    total = 500
    broker.publish_many(
        queue, [message([queue], {"test_id": tid, "n": n, "sleep": 0.02}) for n in range(total)]
    )
    wait_until(lambda: len(happy_end.matching(tid)) >= 50, timeout=60, what="the flow to start")

    try:
        arrived_before = len(happy_end.matching(tid))
        _rabbitmqctl("stop_app")
        time.sleep(2)
    finally:
        _rabbitmqctl("start_app")
        wait_for_broker(suite.rabbitmq_url)

    assert arrived_before < total, "the flow ended before the restart: nothing was at risk"
    duplicates = wait_all_arrived(happy_end, tid, total, timeout=150)
    print(f"\n{total} messages arrived across a broker restart; {duplicates} duplicate(s)")
    assert sidecar.alive(), "the sidecar must reconnect by itself, not exit"
    assert runtime.alive()


# --- SIGTERM ----------------------------------------------------------------------------------


def test_sigterm_lets_the_in_flight_message_finish_and_leaves_the_rest_queued(
    suite: SuiteConfig, broker: Broker, happy_end: Inbox, procs: Processes, tid: str
) -> None:
    queue = suite.q(f"fault-term-{tid[2:10]}")
    env = suite.env({"ASYA_RUNTIME_TIMEOUT": "30s"})
    _, sidecar = start_actor(procs, broker, "term", "timeout", queue, env)
    marker = Path(suite.socket_dir) / f"{tid}.started"
    broker.publish_many(
        queue,
        [message([queue], {"test_id": tid, "n": 0, "sleep": 2, "started_marker": str(marker)})]
        + [message([queue], {"test_id": tid, "n": n, "sleep": 0}) for n in (1, 2)],
    )
    wait_until(marker.exists, timeout=20, what="the first message to start")

    sidecar.signal(signal.SIGTERM)
    assert sidecar.wait(30) == 0, sidecar.tail()

    [out] = happy_end.wait_for(tid, timeout=10)
    assert out.data["payload"]["n"] == 0
    assert out.data["payload"]["slept"] == 2
    # Acked: once the sidecar is gone, only the two untouched messages are still queued.
    wait_until(lambda: broker.depth(queue) == 2, timeout=10, what="two messages left queued")

    restart_sidecar(procs, broker, "term", queue, env)
    assert wait_all_arrived(happy_end, tid, 3, timeout=30) == 0


def test_sigterm_with_prefetched_messages_loses_and_duplicates_none(
    suite: SuiteConfig, broker: Broker, happy_end: Inbox, procs: Processes, tid: str
) -> None:
    queue = suite.q(f"fault-prefetch-{tid[2:10]}")
    env = suite.env({"ASYA_RUNTIME_TIMEOUT": "30s", "ASYA_RABBITMQ_PREFETCH": "4"})
    _, sidecar = start_actor(procs, broker, "prefetch", "timeout", queue, env)
    marker = Path(suite.socket_dir) / f"{tid}.started"
    first = {"test_id": tid, "n": 0, "sleep": 1, "started_marker": str(marker)}
    broker.publish_many(
        queue,
        [message([queue], first)]
        + [message([queue], {"test_id": tid, "n": n, "sleep": 1}) for n in range(1, 6)],
    )
    wait_until(marker.exists, timeout=20, what="the first message to start")

    sidecar.signal(signal.SIGTERM)
    assert sidecar.wait(60) == 0, sidecar.tail()
    restart_sidecar(procs, broker, "prefetch", queue, env)

    assert wait_all_arrived(happy_end, tid, 6, timeout=60) == 0
    time.sleep(1)
    assert len(happy_end.matching(tid)) == 6, "a message was processed twice"


def test_a_runtime_stopped_by_sigterm_finishes_its_message_and_later_ones_wait_for_the_next(
    suite: SuiteConfig,
    broker: Broker,
    happy_end: Inbox,
    error_end: Inbox,
    procs: Processes,
    tid: str,
) -> None:
    queue = suite.q(f"fault-rtterm-{tid[2:10]}")
    env = suite.env({"ASYA_RUNTIME_TIMEOUT": "30s"})
    runtime, sidecar = start_actor(procs, broker, "rtterm", "timeout", queue, env)
    marker = Path(suite.socket_dir) / f"{tid}.started"
    broker.publish(
        queue, message([queue], {"test_id": tid, "n": 0, "sleep": 2, "started_marker": str(marker)})
    )
    wait_until(marker.exists, timeout=20, what="the first message to start")

    runtime.signal(signal.SIGTERM)
    assert runtime.wait(30) == 0, runtime.tail()
    happy_end.wait_for(tid, timeout=10)

    # No runtime: the next message is not turned into an error, it waits in the queue.
    broker.publish(queue, message([queue], {"test_id": tid, "n": 1, "sleep": 0}))
    time.sleep(3)
    assert error_end.matching(tid) == []
    assert len(happy_end.matching(tid)) == 1
    assert sidecar.alive()
    # Requeued untouched, and nobody consuming while the runtime is away.
    assert broker.depth(queue) == 1
    assert broker.consumers(queue) == 0

    procs.runtime("rtterm", "timeout", env)
    assert wait_all_arrived(happy_end, tid, 2, timeout=60) == 0
    assert error_end.matching(tid) == []


# --- gateway unreachable ----------------------------------------------------------------------


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections (kernel backlog) but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(128)
        yield int(server.getsockname()[1])


def _with_job(queue: str, tid: str, n: int) -> dict[str, Any]:
    return message([queue], {"test_id": tid, "n": n}, job_id=f"{tid}-job-{n}")


def test_messages_flow_when_the_gateway_port_is_closed(
    suite: SuiteConfig, broker: Broker, happy_end: Inbox, procs: Processes, tid: str
) -> None:
    queue = suite.q(f"fault-gwdown-{tid[2:10]}")
    env = suite.env({"ASYA_GATEWAY_URL": f"http://127.0.0.1:{free_port()}"})
    start_actor(procs, broker, "gwdown", "echo", queue, env)
    sent = [_with_job(queue, tid, n) for n in range(5)]
    broker.publish_many(queue, sent)

    assert wait_all_arrived(happy_end, tid, 5, timeout=60) == 0
    for data in (item.data for item in happy_end.matching(tid)):
        assert_routed_to_end(
            data, sent[data["payload"]["n"]], sent[data["payload"]["n"]]["payload"]
        )


def test_progress_reports_to_a_gateway_that_never_answers_are_given_up_after_their_budget(
    suite: SuiteConfig, broker: Broker, happy_end: Inbox, procs: Processes, tid: str
) -> None:
    queue = suite.q(f"fault-gwhang-{tid[2:10]}")
    with silent_server() as port:
        env = suite.env({"ASYA_GATEWAY_URL": f"http://127.0.0.1:{port}"})
        start_actor(procs, broker, "gwhang", "echo", queue, env)
        started = time.monotonic()
        broker.publish(queue, _with_job(queue, tid, 0))

        assert wait_all_arrived(happy_end, tid, 1, timeout=60) == 0
        elapsed = time.monotonic() - started

    # received, processing and completed: at most 2 s each, never unbounded.
    assert elapsed < 3 * 2 + 8, f"the message took {elapsed:.1f} s"
