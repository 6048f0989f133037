"""A few sidecar_vs_runtime scenarios on another broker: the harness and the scenarios.

``sidecar_on_sqs`` and ``sidecar_on_nats`` subclass :class:`SidecarScenarios` and differ only
in the transport URL their actors get. The actors and handlers are sidecar_vs_runtime's
(``handlers.py``).
The test side talks to the broker through Asya's own transport, run on an event loop in a
background thread: it declares and deletes this run's queues, publishes, and drains
happy-end and error-end into ``Inbox``es the tests wait on.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from asya.transports import Transport, open_transport
from asya.transports.base import IncomingMessage, run_in_background
from tests.integration.sidecar_vs_runtime.broker import Inbox
from tests.integration.sidecar_vs_runtime.checks import assert_error_end, assert_routed_to_end
from tests.integration.sidecar_vs_runtime.harness import Processes, SuiteConfig, message

T = TypeVar("T")

STARTUP = 60.0  # the first message waits for the actors to start

# The actors every test shares: suite name -> (handler, extra environment).
ACTORS: dict[str, tuple[str, dict[str, str]]] = {
    "echo": ("echo", {}),
    "fanout": ("fanout", {}),
    "error": ("error", {}),
    "crash-once": (
        "crash_once_message",
        {"ASYA_HANDLER_MODE": "message", "ASYA_MAX_RETRIES": "2", "ASYA_RETRY_BACKOFF": "200ms"},
    ),
}


class TransportClient:
    """A synchronous view of one Asya transport, for the test side."""

    def __init__(self, url: str, exchange: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="transport-client", daemon=True
        )
        self._thread.start()
        self.transport: Transport = open_transport(url, exchange=exchange)
        self.declared: list[str] = []
        self.call(self.transport.connect())

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def declare(self, queue: str) -> None:
        self.call(self.transport.declare_queue(queue))
        self.declared.append(queue)

    def publish(self, queue: str, body: dict[str, Any]) -> None:
        self.call(self.transport.publish(queue, json.dumps(body).encode()))

    def drain(self, inbox: Inbox) -> None:
        """Move every message of ``inbox.queue`` into ``inbox`` (acked) from now on."""

        async def store(delivery: IncomingMessage) -> None:
            inbox.add(delivery.body)
            await delivery.ack()

        async def start() -> None:
            subscription = await self.transport.consume(inbox.queue, prefetch=10)
            run_in_background(subscription.serve(store))

        self.call(start())

    def close(self) -> None:
        """Delete every queue declared here, close the transport and stop the loop."""
        try:
            for queue in self.declared:
                self.call(self.transport.delete_queue(queue))
            self.call(self.transport.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


@dataclass
class TransportMesh:
    """What a test talks to: queue names, publishing, the terminal inboxes, the broker URL."""

    suite: SuiteConfig
    client: TransportClient
    happy_end: Inbox
    error_end: Inbox
    transport_url: str

    def q(self, actor: str) -> str:
        return self.suite.q(f"test-{actor}-queue")

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = self.suite.env(extra)
        env["ASYA_TRANSPORT_URL"] = self.transport_url
        env.pop("ASYA_RABBITMQ_URL", None)
        return env

    def send(self, steps: list[str], payload: Any, **fields: Any) -> dict[str, Any]:
        sent = message(steps, payload, **fields)
        self.client.publish(steps[sent["route"]["current"]], sent)
        return sent


@contextmanager
def running_mesh(
    transport_url: str, exchange: str, prefix: str, log_dir: Path
) -> Iterator[TransportMesh]:
    """This run's queues declared and drained, the ``ACTORS`` running; all gone afterwards."""
    suite = SuiteConfig(
        rabbitmq_url="",  # unused: TransportMesh.env points the actors at transport_url
        exchange=exchange,
        prefix=prefix,
        log_dir=log_dir,
        socket_dir=Path(tempfile.mkdtemp(prefix=f"{prefix[:24]}", dir="/tmp")),
    )
    client = TransportClient(transport_url, exchange)
    processes = Processes(suite)
    try:
        happy_end, error_end = Inbox(suite.happy_end), Inbox(suite.error_end)
        mesh = TransportMesh(suite, client, happy_end, error_end, transport_url)
        for queue in [suite.happy_end, suite.error_end, *(mesh.q(a) for a in ACTORS)]:
            client.declare(queue)
        client.drain(happy_end)
        client.drain(error_end)
        for actor, (handler, extra) in ACTORS.items():
            processes.actor(actor, handler, mesh.q(actor), mesh.env(extra))
        yield mesh
    finally:
        processes.stop_all()
        client.close()
        shutil.rmtree(suite.socket_dir, ignore_errors=True)


class SidecarScenarios:
    """The scenarios; a broker's test module subclasses this (``TestSidecarOn…``) and defines
    a ``mesh`` fixture that yields its ``running_mesh``."""

    pytestmark = pytest.mark.services

    @pytest.fixture
    def procs(self, mesh: TransportMesh) -> Iterator[Processes]:
        """Processes a single test starts (and kills); all stopped when it ends."""
        processes = Processes(mesh.suite)
        try:
            yield processes
        finally:
            processes.stop_all()

    @pytest.fixture
    def tid(self) -> str:
        """A unique id a test puts in its messages to find them in the terminal queues."""
        return f"t-{uuid.uuid4().hex}"

    def test_a_two_step_route_passes_through_both_actors_to_happy_end(
        self, mesh: TransportMesh, tid: str
    ) -> None:
        echo = mesh.q("echo")
        sent = mesh.send([echo, echo], {"test_id": tid})
        [out] = mesh.happy_end.expect(tid, timeout=STARTUP)
        assert_routed_to_end(out, sent, {"test_id": tid})

    def test_fanout_outputs_each_travel_the_rest_of_the_route(
        self, mesh: TransportMesh, tid: str
    ) -> None:
        mesh.send([mesh.q("fanout"), mesh.q("echo")], {"test_id": tid, "count": 3})
        outs = mesh.happy_end.expect(tid, count=3, timeout=STARTUP)
        assert sorted(out["payload"]["index"] for out in outs) == [0, 1, 2]
        assert all(out["route"]["current"] == 2 for out in outs)

    def test_a_handler_error_sends_the_message_to_error_end(
        self, mesh: TransportMesh, tid: str
    ) -> None:
        step = mesh.q("error")
        sent = mesh.send([step], {"test_id": tid})
        [out] = mesh.error_end.expect(tid, timeout=STARTUP)
        assert_error_end(
            out, sent, code="processing_error", failed_step=step, error_type="ValueError"
        )

    def test_a_crash_is_retried_after_a_delay_and_exhausted_retries_go_to_error_end(
        self, mesh: TransportMesh, tid: str
    ) -> None:
        step = mesh.q("crash-once")
        once = mesh.send([step], {"test_id": f"{tid}-once", "fail_times": 1})
        always = mesh.send([step], {"test_id": f"{tid}-always", "fail_times": 99})

        [out] = mesh.happy_end.expect(tid, timeout=STARTUP)
        assert out["payload"] == {**once["payload"], "succeeded_on_attempt": 1}
        [failed] = mesh.error_end.expect(tid, timeout=STARTUP)
        assert_error_end(
            failed,
            None,
            code="runtime_crashed",
            failed_step=step,
            severity="recoverable",
            attempts=3,
        )
        assert failed["payload"] == always["payload"]

    def test_a_message_whose_actor_is_killed_mid_message_is_processed_by_the_next(
        self, mesh: TransportMesh, procs: Processes, tid: str, tmp_path: Path
    ) -> None:
        """The actor holding a message dies without a word; a new one gets the message once
        the broker gives up on the dead holder (SQS: visibility timeout; NATS: ack wait)."""
        name = f"slow-{tid[2:10]}"
        queue = mesh.suite.q(name)
        mesh.client.declare(queue)
        runtime = procs.runtime(name, "timeout", mesh.env())
        sidecar = procs.sidecar(name, queue, mesh.env())
        marker = tmp_path / "started"
        payload = {"test_id": tid, "sleep_seconds": 60, "started_marker": str(marker)}
        mesh.send([queue], payload)
        deadline = time.monotonic() + STARTUP
        while not marker.exists():
            assert time.monotonic() < deadline, f"the handler never started:\n{sidecar.tail()}"
            time.sleep(0.1)

        sidecar.kill9()  # no drain, no goodbye: its heartbeat stops with it
        os.killpg(runtime.pid, signal.SIGKILL)  # the runtime and its sleeping worker
        runtime.wait(10)
        procs.actor(f"echo-{tid[2:10]}", "echo", queue, mesh.env())

        [out] = mesh.happy_end.expect(tid, timeout=STARTUP)
        assert out["payload"] == payload
        assert out["route"]["current"] == 1
