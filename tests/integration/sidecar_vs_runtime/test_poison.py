"""Poison messages (docs/reference/sidecar.md#poison-messages) with real processes.

One marked message kills its consumer: every time the sidecar hands it to the runtime, the
handler tells the harness, which SIGKILLs the sidecar and starts a new one. After
``ASYA_MAX_DELIVERIES`` such deaths the message must land in error-end as ``poison_message``
without reaching the runtime again, while the 500 other messages sent meanwhile all arrive and
the actor goes on consuming. Once on RabbitMQ (a classic queue: the sidecar keeps the count in
the message) and once on SQLite (the lease counts).
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.helpers import wait_until
from tests.integration.sidecar_vs_runtime.broker import Broker, Inbox
from tests.integration.sidecar_vs_runtime.harness import Proc, Processes, SuiteConfig, message
from tests.integration.sidecar_vs_runtime.test_faults import restart_sidecar, start_actor

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(400)]

MAX_DELIVERIES = 5
OTHERS = 500
BATCH = OTHERS // MAX_DELIVERIES


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


class Killer:
    """Watches the marked message's signal file and kills the sidecar each time it fills."""

    def __init__(self, folder: Path) -> None:
        self.signal = folder / f"poison-{uuid.uuid4().hex[:8]}.signal"
        self.release = self.signal.with_suffix(".release")

    def marked(self, steps: list[str], tid: str) -> dict[str, Any]:
        payload = {"test_id": tid, "signal": str(self.signal), "release": str(self.release)}
        return message(steps, payload)

    def started_at_least(self, calls: int) -> bool:
        return lines(self.signal) >= calls

    def kill_each_delivery(
        self,
        sidecar: Proc,
        restart: Callable[[], Proc],
        send_batch: Callable[[int], None],
    ) -> Proc:
        """Kill the sidecar as the marked message reaches the runtime, MAX_DELIVERIES times;
        send a batch of other messages after each kill. Returns the last sidecar started."""
        for kill in range(1, MAX_DELIVERIES + 1):
            wait_until(
                functools.partial(self.started_at_least, kill),
                timeout=120,
                what=f"delivery {kill} of the marked message",
            )
            sidecar.kill9()
            with self.release.open("a") as out:  # let the stranded handler call end
                out.write("killed\n")
            send_batch(kill - 1)
            sidecar = restart()
        return sidecar


def other_messages(steps: list[str], tid: str, batch: int) -> list[dict[str, Any]]:
    return [
        message(steps, {"test_id": tid, "n": n}) for n in range(batch * BATCH, (batch + 1) * BATCH)
    ]


def assert_parked(out: dict[str, Any], marked: dict[str, Any], queue: str) -> None:
    assert out["error"] == "poison_message"
    assert out["failed_step"] == queue
    assert out["route"] == marked["route"]
    assert out["payload"] == marked["payload"]
    details = out["error_details"]
    assert details["deliveries"] == MAX_DELIVERIES
    assert f"{MAX_DELIVERIES} deliveries" in details["message"]
    assert details["severity"] == "fatal"


# --- RabbitMQ ---------------------------------------------------------------------------------


def test_a_message_that_kills_its_sidecar_is_parked_on_rabbitmq(
    suite: SuiteConfig,
    broker: Broker,
    happy_end: Inbox,
    error_end: Inbox,
    procs: Processes,
    tid: str,
    tmp_path: Path,
) -> None:
    queue = suite.q(f"poison-{tid[2:10]}")
    env = suite.env({"ASYA_MAX_DELIVERIES": str(MAX_DELIVERIES)})
    runtime, sidecar = start_actor(procs, broker, "poison-rmq", "poison", queue, env)
    killer = Killer(tmp_path)
    marked = killer.marked([queue], tid)
    broker.publish(queue, marked)

    sidecar = killer.kill_each_delivery(
        sidecar,
        restart=lambda: restart_sidecar(procs, broker, "poison-rmq", queue, env),
        send_batch=lambda batch: broker.publish_many(queue, other_messages([queue], tid, batch)),
    )

    [out] = error_end.expect(tid, timeout=120)
    assert_parked(out, marked, queue)
    wait_until(
        lambda: len(happy_end.count_distinct(tid, key=lambda d: d["payload"]["n"])[0]) >= OTHERS,
        timeout=120,
        what=f"all {OTHERS} other messages in happy-end",
    )
    seen, _ = happy_end.count_distinct(tid, key=lambda data: data["payload"]["n"])
    assert seen == set(range(OTHERS))
    assert lines(killer.signal) == MAX_DELIVERIES, "the runtime saw the parked delivery"

    after = message([queue], {"test_id": f"{tid}-after", "n": -1})
    broker.publish(queue, after)
    happy_end.expect(f"{tid}-after", timeout=30)
    assert sidecar.alive()
    assert runtime.alive()
    assert broker.consumers(queue) == 1
    assert broker.depth(queue) == 0


# --- SQLite -----------------------------------------------------------------------------------


class SqliteQueues:
    """The test's synchronous view of the actor's SQLite queue file."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _run(self, work: Callable[[Any], Any]) -> Any:
        from asya.transports import open_transport

        async def go() -> Any:
            async with open_transport(self.url) as transport:
                return await work(transport)

        return asyncio.run(go())

    def publish_many(self, queue: str, messages: Iterable[dict[str, Any]]) -> None:
        bodies = [orjson.dumps(m) for m in messages]

        async def publish(transport: Any) -> None:
            await transport.declare_queue(queue)
            for body in bodies:
                await transport.publish(queue, body)

        self._run(publish)

    def drain(self, queue: str) -> list[dict[str, Any]]:
        """Take (and ack) every message ready in ``queue`` now."""

        async def drain(transport: Any) -> list[dict[str, Any]]:
            await transport.declare_queue(queue)
            taken: list[dict[str, Any]] = []
            subscription = await transport.consume(queue, prefetch=100)
            try:
                while True:
                    try:
                        delivery = await asyncio.wait_for(anext(aiter(subscription)), 0.3)
                    except (TimeoutError, StopAsyncIteration):
                        return taken
                    taken.append(orjson.loads(delivery.body))
                    await delivery.ack()
            finally:
                await subscription.cancel()

        result: list[dict[str, Any]] = self._run(drain)
        return result

    def depth(self, queue: str) -> int:
        return int(self._run(lambda transport: transport.depth(queue)))


def test_a_message_that_kills_its_sidecar_is_parked_on_sqlite(
    suite: SuiteConfig, broker: Broker, procs: Processes, tid: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'queues.db'}?lease=1s"
    queue, happy, errors = "poison-sqlite", "happy-end", "error-end"
    queues = SqliteQueues(url)
    env = suite.env(
        {
            "ASYA_TRANSPORT_URL": url,
            "ASYA_STEP_HAPPY_END": happy,
            "ASYA_STEP_ERROR_END": errors,
            "ASYA_MAX_DELIVERIES": str(MAX_DELIVERIES),
        }
    )
    queues.publish_many(queue, [])  # declared, so the marked message can wait for the actor
    killer = Killer(tmp_path)
    marked = killer.marked([queue], tid)
    queues.publish_many(queue, [marked])
    runtime = procs.runtime("poison-sqlite", "poison", env)
    sidecar = procs.sidecar("poison-sqlite", queue, env)

    sidecar = killer.kill_each_delivery(
        sidecar,
        restart=lambda: procs.sidecar("poison-sqlite", queue, env),
        send_batch=lambda batch: queues.publish_many(queue, other_messages([queue], tid, batch)),
    )

    parked: list[dict[str, Any]] = []

    def parked_arrived() -> bool:
        parked.extend(queues.drain(errors))
        return bool(parked)

    wait_until(parked_arrived, timeout=120, what="the marked message in error-end")
    [out] = parked
    assert_parked(out, marked, queue)
    arrived: list[dict[str, Any]] = []

    def all_arrived() -> bool:
        arrived.extend(queues.drain(happy))
        return {m["payload"]["n"] for m in arrived} >= set(range(OTHERS))

    wait_until(all_arrived, timeout=180, interval=1, what=f"all {OTHERS} other messages")
    assert lines(killer.signal) == MAX_DELIVERIES, "the runtime saw the parked delivery"
    assert queues.drain(errors) == []

    queues.publish_many(queue, [message([queue], {"test_id": tid, "n": -1})])
    wait_until(
        lambda: any(m["payload"]["n"] == -1 for m in queues.drain(happy)),
        timeout=30,
        what="a message sent after the parking",
    )
    assert sidecar.alive()
    assert runtime.alive()
    assert queues.depth(queue) == 0
