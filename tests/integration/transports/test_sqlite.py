"""SQLite-only behaviour: leases, several processes on one file, polling latency."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from asya.errors import TransportError
from asya.transports import open_transport
from tests.helpers import child_env, stop_process

from .receiver import Receiver

WORKER = Path(__file__).with_name("worker.py")


async def test_lease_is_renewed_while_the_consumer_holds_the_message(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}?lease=1s"
    async with open_transport(url) as holder, open_transport(url) as other:
        await holder.declare_queue("work")
        await holder.publish("work", b"long job")
        delivery = await Receiver(await holder.consume("work")).get()

        rival = Receiver(await other.consume("work"))
        await rival.assert_nothing_within(2.5)  # two and a half lease lengths
        await delivery.ack()
        assert await other.depth("work") == 0


async def test_lease_renewal_survives_a_failed_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}?lease=1s"
    async with open_transport(url) as holder, open_transport(url) as other:
        await holder.declare_queue("work")
        await holder.publish("work", b"long job")
        delivery = await Receiver(await holder.consume("work")).get()

        db = holder.db  # type: ignore[attr-defined]
        run, failures = db.run, [RuntimeError("renewal round failed")]

        async def fail_once(fn: Any) -> Any:
            if failures:
                raise failures.pop()
            return await run(fn)

        monkeypatch.setattr(db, "run", fail_once)
        rival = Receiver(await other.consume("work"))
        await rival.assert_nothing_within(2.5)  # the next rounds still renew the lease
        assert not failures
        await delivery.ack()
        assert await other.depth("work") == 0


async def test_expired_lease_redelivers_and_the_late_ack_raises(tmp_path: Path) -> None:
    db = tmp_path / "q.db"
    url = f"sqlite:///{db}?lease=30s"
    async with open_transport(url) as slow, open_transport(url) as fast:
        await slow.declare_queue("work")
        await slow.publish("work", b"job")
        stale = await Receiver(await slow.consume("work")).get()
        # the holder's process froze past its lease: expire it as the clock would
        with sqlite3.connect(db) as conn:
            conn.execute("UPDATE messages SET visible_at = 0")

        retaken = await Receiver(await fast.consume("work")).get()
        assert retaken.body == b"job"
        assert retaken.redelivered is True
        with pytest.raises(TransportError, match="lease"):
            await stale.ack()
        await retaken.ack()
        assert await fast.depth("work") == 0


async def test_queues_in_one_file_are_shared_by_transports_and_survive_reopening(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'q.db'}"
    async with open_transport(url) as first:
        await first.declare_queue("kept")
        await first.publish("kept", b"durable")
    assert (tmp_path / "nested" / "dir" / "q.db").exists()
    async with open_transport(url) as second:
        assert await second.depth("kept") == 1
        delivery = await Receiver(await second.consume("kept")).get()
        assert delivery.body == b"durable"
        await delivery.ack()


async def test_relative_path_is_resolved_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with open_transport("sqlite:///.asya/queues.db") as transport:
        await transport.declare_queue("q")
    assert (tmp_path / ".asya" / "queues.db").exists()


async def test_idle_consumer_picks_up_a_message_from_another_process_quickly(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    async with open_transport(url) as consumer, open_transport(url) as producer:
        await consumer.declare_queue("q")
        receiver = Receiver(await consumer.consume("q"))
        await receiver.assert_nothing_within(0.5)  # let the poller back off to its maximum
        latencies = []
        for _ in range(10):
            sent = time.monotonic()
            await producer.publish("q", b"ping")
            await (await receiver.get()).ack()
            latencies.append(time.monotonic() - sent)
            await asyncio.sleep(0.2)
    # the idle poll interval is 50 ms (a 1 s poll would fail this); slack for a loaded machine
    assert sorted(latencies)[len(latencies) // 2] < 0.2, latencies


async def test_bad_sqlite_file_raises_transport_error(tmp_path: Path) -> None:
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(TransportError, match=r"garbage\.db"):
        await open_transport(f"sqlite:///{not_a_db}").connect()


async def test_a_path_that_cannot_be_created_raises_transport_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    with pytest.raises(TransportError, match="a-file"):
        await open_transport(f"sqlite:///{blocker}/queues.db").connect()


@pytest.mark.slow
def test_four_producer_and_four_consumer_processes_deliver_every_message_once(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'stress.db'}"
    queue, per_producer, producers, consumers = "stress", 2500, 4, 4

    async def declare() -> None:
        async with open_transport(url) as transport:
            await transport.declare_queue(queue)

    asyncio.run(declare())
    donefile = tmp_path / "producers-done"
    outputs = [tmp_path / f"consumer-{i}.txt" for i in range(consumers)]
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                "consume",
                url,
                "asya",
                queue,
                str(out),
                str(donefile),
                "10",
            ],
            env=child_env(),
        )
        for out in outputs
    ]
    try:
        producing = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(WORKER),
                    "produce",
                    url,
                    "asya",
                    queue,
                    f"p{i}",
                    str(per_producer),
                ],
                env=child_env(),
            )
            for i in range(producers)
        ]
        procs += producing
        for proc in producing:
            assert proc.wait(90) == 0
        donefile.touch()
        for proc in procs[:consumers]:
            assert proc.wait(90) == 0
    finally:
        for proc in procs:
            stop_process(proc)
    elapsed = time.monotonic() - started

    lines = [line.split() for out in outputs for line in out.read_text().splitlines()]
    delivered = Counter(body for body, _ in lines)
    expected = {f"p{p}-{n}" for p in range(producers) for n in range(per_producer)}
    assert set(delivered) == expected, "lost or unknown messages"
    # the 30 s lease never expired, so nothing may arrive twice or be flagged redelivered
    assert [body for body, count in delivered.items() if count > 1] == []
    assert all(flag == "0" for _, flag in lines)
    assert all(out.read_text() for out in outputs), "every consumer took a share"
    print(f"10,000 messages through 4+4 processes in {elapsed:.1f} s")
