"""The one PostgreSQL ``LISTEN`` connection of a gateway process.

Every replica's store sends ``NOTIFY asya_job_updates`` in the transaction of each update; this
listener receives them all (its own process's too) and hands them to the in-process hub. It
reconnects with backoff when the database goes away, and on reconnecting re-reads the updates
of every watched job from the database, so a stream never misses one (subscribers drop
duplicates by sequence).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import orjson

from asya.backoff import Backoff
from asya.gateway.database import ssl_mode
from asya.gateway.hub import Hub
from asya.gateway.models import CANCELLED, JobUpdate
from asya.gateway.store import NOTIFY_CHANNEL, JobStore

logger = logging.getLogger(__name__)

_RESYNC = "\x00resync"  # queued so a re-read never overtakes the notifications after it


def asyncpg_dsn(url: str) -> str:
    """A DSN for ``asyncpg.connect``: its scheme, and ``ssl=`` spelled ``sslmode=``."""
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql://" + url[len(prefix) :]
    url, mode = ssl_mode(url)
    if mode is None:
        return url
    return f"{url}{'&' if '?' in url else '?'}sslmode={mode}"


class Listener:
    def __init__(
        self, store: JobStore, hub: Hub, on_cancelled: Callable[[str], None] | None = None
    ) -> None:
        self._store = store
        self._hub = hub
        self._on_cancelled = on_cancelled  # every replica's cancels, watched or not
        self._dsn = asyncpg_dsn(store.url)
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._connected = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, seconds: float) -> None:
        await asyncio.wait_for(self._connected.wait(), seconds)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._queue.put_nowait(payload)

    async def run(self) -> None:
        """Listen forever (cancel to stop); one dispatcher keeps notifications in order."""
        dispatcher = asyncio.create_task(self._dispatch(), name="gateway-listener-dispatch")
        backoff = Backoff(0.5, cap=5.0)
        first = True
        try:
            while True:
                conn: asyncpg.Connection | None = None
                try:
                    conn = await asyncpg.connect(self._dsn, timeout=5)
                    lost = asyncio.Event()
                    conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                    await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                    self._connected.set()
                    if not first:
                        logger.info("LISTEN connection restored; re-reading watched jobs")
                        self._queue.put_nowait(_RESYNC)
                    first = False
                    backoff.reset()
                    while not lost.is_set() and not conn.is_closed():
                        try:
                            await asyncio.wait_for(lost.wait(), 5)
                        except TimeoutError:
                            await conn.execute("SELECT 1")
                    delay = backoff.next()
                except Exception as exc:  # whatever broke, reconnect: fan-out must not die
                    delay = backoff.next()
                    logger.warning("LISTEN connection lost (%s); retrying in %.1f s", exc, delay)
                finally:
                    self._connected.clear()
                    if conn is not None and not conn.is_closed():
                        conn.terminate()
                await asyncio.sleep(delay)
        finally:
            dispatcher.cancel()
            await asyncio.gather(dispatcher, return_exceptions=True)

    async def _resync(self) -> None:
        for job_id in self._hub.watched_jobs():
            try:
                for update in await self._store.list_updates(job_id):
                    await self._hub.publish(update)
            except Exception:
                logger.exception("could not re-read updates of job %s", job_id)

    async def _dispatch(self) -> None:
        while True:
            payload = await self._queue.get()
            if payload == _RESYNC:
                await self._resync()
                continue
            try:
                data = orjson.loads(payload)
                if data.get("status") == CANCELLED and self._on_cancelled is not None:
                    self._on_cancelled(data["job_id"])
                if not self._hub.is_watched(data["job_id"]):
                    continue
                if data.get("fetch"):
                    sequence = int(data["sequence"])
                    updates = await self._store.list_updates(
                        data["job_id"], after=sequence - 1, limit=1
                    )
                    for update in updates:
                        await self._hub.publish(update)
                else:
                    await self._hub.publish(JobUpdate.from_wire(data))
            except Exception:
                logger.exception("could not deliver a job update notification")
