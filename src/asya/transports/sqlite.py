"""A durable queue in one SQLite file, shared by the processes of one machine.

This is the embedded transport of ``asya up``: no broker to install, yet the same at-least-once
contract as RabbitMQ. A consumed message is *leased*: its ``visible_at`` moves to the end of the
lease and ``lease_token`` records the holder. The holder renews the lease while it works; if it
dies, the lease expires and the message is visible again (``redelivered``). Ack deletes the row
only if the lease is still ours, nack releases it.

Concurrency: WAL journal (readers never block the writer), a busy timeout, and every write in a
short ``BEGIN IMMEDIATE`` transaction (so two writers never deadlock upgrading a read lock).
sqlite3 blocks, so each transport runs its statements on one worker thread of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from asya.backoff import backoff_delay
from asya.errors import TransportError, UnroutableError
from asya.transports._polling import PollingSubscription
from asya.transports.base import Subscription, Transport
from asya.transports.delivery import Delivery

log = logging.getLogger(__name__)

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    visible_at REAL NOT NULL,
    lease_token TEXT,
    deliveries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue, id);
"""


@dataclass(frozen=True)
class SqliteSettings:
    """Tuning knobs, from the URL query (``?lease=30s&busy_timeout=10s``) or keyword options."""

    path: Path
    lease: float = 30.0
    busy_timeout: float = 10.0
    poll_min: float = 0.002
    poll_max: float = 0.05
    synchronous: str = "NORMAL"

    def __post_init__(self) -> None:
        if self.lease <= 0:
            raise ValueError(f"lease must be positive, got {self.lease}")
        if not 0 < self.poll_min <= self.poll_max:
            raise ValueError("poll_min must be positive and at most poll_max")
        if self.synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"synchronous must be off, normal, full or extra: {self.synchronous}")


class _Database:
    """One sqlite3 connection used from one dedicated thread."""

    def __init__(self, settings: SqliteSettings) -> None:
        self._settings = settings
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asya-sqlite")
        try:
            return await loop.run_in_executor(self._executor, self._call, fn)
        except (sqlite3.Error, OSError) as exc:
            raise TransportError(f"sqlite queue {self._settings.path}: {exc}") from exc

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = self._open()
        return fn(self._conn)

    def _open(self) -> sqlite3.Connection:
        settings = self._settings
        settings.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            settings.path,
            timeout=settings.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {settings.synchronous.upper()}")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        return conn

    async def close(self) -> None:
        def shut(conn: sqlite3.Connection) -> None:
            conn.close()

        if self._conn is not None:
            await self.run(shut)
            self._conn = None
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None


@contextlib.contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A short write transaction: ``BEGIN IMMEDIATE`` takes the write lock up front, so it
    never fails half-way upgrading a read lock; ``ROLLBACK`` on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _queue_exists(conn: sqlite3.Connection, queue: str) -> bool:
    return conn.execute("SELECT 1 FROM queues WHERE name = ?", (queue,)).fetchone() is not None


def _require_queue(conn: sqlite3.Connection, queue: str, path: Path) -> None:
    if not _queue_exists(conn, queue):
        raise TransportError(f"no queue named {queue!r} in {path}")


class SqliteDelivery(Delivery):
    def __init__(
        self, transport: SqliteTransport, queue: str, row: tuple[int, bytes, int], token: str
    ) -> None:
        message_id, body, deliveries = row
        super().__init__(queue, bytes(body), redelivered=deliveries > 1, deliveries=deliveries)
        self.message_id = message_id
        self.token = token
        self._transport = transport

    async def _settle(self, *, ack: bool, requeue: bool) -> None:
        if ack or not requeue:
            sql = "DELETE FROM messages WHERE id = ? AND lease_token = ?"
        else:
            sql = (
                "UPDATE messages SET visible_at = 0, lease_token = NULL "
                "WHERE id = ? AND lease_token = ?"
            )
        params = (self.message_id, self.token)

        def settle(conn: sqlite3.Connection) -> int:
            with _immediate(conn):
                return conn.execute(sql, params).rowcount

        if await self._transport.db.run(settle) == 0:
            self.void = True
            raise TransportError(
                f"lease on message {self.message_id} of {self.queue!r} expired and another "
                "consumer took it: it will be processed again"
            )


class SqliteSubscription(PollingSubscription):
    def __init__(self, transport: SqliteTransport, queue: str, prefetch: int) -> None:
        super().__init__(queue, prefetch)
        self._transport = transport

    async def take(self, limit: int) -> list[Delivery]:
        token = uuid.uuid4().hex  # per claim: an expired lease re-taken here is a new lease
        lease = self._transport.settings.lease
        queue = self.queue

        def claim(conn: sqlite3.Connection) -> list[tuple[int, bytes, int]]:
            now = time.time()
            # An idle poll is a plain read (WAL readers never block); only take the write
            # lock when there is something to claim.
            if (
                conn.execute(
                    "SELECT 1 FROM messages WHERE queue = ? AND visible_at <= ? LIMIT 1",
                    (queue, now),
                ).fetchone()
                is None
            ):
                return []
            with _immediate(conn):
                rows = conn.execute(
                    "UPDATE messages SET visible_at = ?, lease_token = ?, "
                    "deliveries = deliveries + 1 WHERE id IN (SELECT id FROM messages "
                    "WHERE queue = ? AND visible_at <= ? ORDER BY id LIMIT ?) "
                    "RETURNING id, body, deliveries",
                    (now + lease, token, queue, now, limit),
                ).fetchall()
            return sorted(rows)

        rows = await self._transport.db.run(claim)
        return [SqliteDelivery(self._transport, queue, row, token) for row in rows]

    async def release(self, deliveries: list[Delivery]) -> None:
        await self._transport.release(
            (d.message_id, d.token) for d in deliveries if isinstance(d, SqliteDelivery)
        )

    def idle_timeout(self, idle_rounds: int) -> float:
        settings = self._transport.settings
        return backoff_delay(idle_rounds, first=settings.poll_min, cap=settings.poll_max)


class SqliteTransport(Transport):
    """A Transport on one SQLite file; ``exchange`` is accepted but has no meaning here."""

    name = "sqlite"

    def __init__(self, settings: SqliteSettings) -> None:
        self.settings = settings
        self.db = _Database(settings)
        self._subscriptions: set[SqliteSubscription] = set()
        self._renewer: asyncio.Task[None] | None = None
        self._connected = False

    def _require_connected(self) -> None:
        if not self._connected:
            raise TransportError("sqlite transport is not connected (call connect() first)")

    async def connect(self) -> None:
        if self._connected:
            return
        try:
            await self.db.run(lambda conn: None)
        except TransportError:
            await self.db.close()
            raise
        self._connected = True
        self._renewer = asyncio.create_task(self._renew_leases(), name="asya-sqlite-lease-renewal")

    async def declare_queue(self, queue: str) -> None:
        self._require_connected()

        def declare(conn: sqlite3.Connection) -> None:
            with _immediate(conn):
                conn.execute(
                    "INSERT OR IGNORE INTO queues (name, created_at) VALUES (?, ?)",
                    (queue, time.time()),
                )

        await self.db.run(declare)

    async def publish(self, queue: str, body: bytes, *, delay: float = 0.0) -> None:
        self._require_connected()

        def insert(conn: sqlite3.Connection) -> bool:
            with _immediate(conn):
                if not _queue_exists(conn, queue):
                    return False
                conn.execute(
                    "INSERT INTO messages (queue, body, visible_at) VALUES (?, ?, ?)",
                    (queue, bytes(body), time.time() + max(delay, 0.0)),
                )
                return True

        if not await self.db.run(insert):
            raise UnroutableError(queue)
        for subscription in self._subscriptions:
            if subscription.queue == queue:
                subscription.wake()

    async def consume(self, queue: str, *, prefetch: int = 1) -> Subscription:
        self._require_connected()
        path = self.settings.path
        await self.db.run(lambda conn: _require_queue(conn, queue, path))
        subscription = SqliteSubscription(self, queue, prefetch)
        self._subscriptions = {s for s in self._subscriptions if not s.finished}
        self._subscriptions.add(subscription)
        return subscription

    async def depth(self, queue: str) -> int:
        self._require_connected()
        path = self.settings.path

        def count(conn: sqlite3.Connection) -> int:
            _require_queue(conn, queue, path)
            row = conn.execute(
                "SELECT count(*) FROM messages WHERE queue = ? AND visible_at <= ?",
                (queue, time.time()),
            ).fetchone()
            return int(row[0])

        return await self.db.run(count)

    async def purge(self, queue: str) -> int:
        self._require_connected()
        path = self.settings.path

        def purge(conn: sqlite3.Connection) -> int:
            with _immediate(conn):
                _require_queue(conn, queue, path)
                return conn.execute(
                    "DELETE FROM messages WHERE queue = ? AND visible_at <= ?",
                    (queue, time.time()),
                ).rowcount

        return await self.db.run(purge)

    async def delete_queue(self, queue: str) -> None:
        self._require_connected()

        def delete(conn: sqlite3.Connection) -> None:
            with _immediate(conn):
                conn.execute("DELETE FROM messages WHERE queue = ?", (queue,))
                conn.execute("DELETE FROM queues WHERE name = ?", (queue,))

        await self.db.run(delete)
        for subscription in self._subscriptions:
            if subscription.queue == queue:
                await subscription.cancel()

    async def ping(self) -> None:
        self._require_connected()
        await self.db.run(lambda conn: conn.execute("SELECT 1").fetchone())

    async def release(self, leases: Iterable[tuple[int, str]]) -> None:
        """Make leased messages visible again at once (cancel, close)."""
        ids = list(leases)

        def release(conn: sqlite3.Connection) -> None:
            with _immediate(conn):
                conn.executemany(
                    "UPDATE messages SET visible_at = 0, lease_token = NULL "
                    "WHERE id = ? AND lease_token = ?",
                    ids,
                )

        if ids:
            await self.db.run(release)

    async def _renew_leases(self) -> None:
        """Extend the leases of unsettled deliveries every third of the lease."""
        lease = self.settings.lease
        while True:
            await asyncio.sleep(lease / 3)
            held = [
                (time.time() + lease, delivery.message_id, delivery.token)
                for subscription in self._subscriptions
                for delivery in subscription.unsettled
                if isinstance(delivery, SqliteDelivery)
            ]
            if not held:
                continue

            def renew(conn: sqlite3.Connection, rows: list[tuple[float, int, str]] = held) -> None:
                with _immediate(conn):
                    conn.executemany(
                        "UPDATE messages SET visible_at = ? WHERE id = ? AND lease_token = ?",
                        rows,
                    )

            try:
                await self.db.run(renew)
            except Exception:  # never let the loop die: held messages would be redelivered
                log.exception("could not renew message leases; retrying in %.1f s", lease / 3)

    async def close(self) -> None:
        if not self._connected:
            return
        self._connected = False
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        try:
            for subscription in self._subscriptions:
                await subscription.shutdown()
        finally:
            self._subscriptions.clear()
            await self.db.close()
