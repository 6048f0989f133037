"""The cancellation feed: which jobs were cancelled, for the sidecars (``GET /cancellations``).

A sidecar must never call its runtime for a message of a cancelled job, yet asking the gateway
about every message would add a round trip to the hot path. So each sidecar holds one stream
instead: on connect it receives the ids of the jobs cancelled within ``RETENTION`` (a sidecar
that starts after a cancel still knows it), then each new cancel as it happens.

Every replica learns of every cancel: the store's own update fan-out brings it (PostgreSQL
``NOTIFY`` through the listener, SQLite's in-process callback), and a poll of the store catches
what that missed (another process on the same SQLite file, a LISTEN connection being restored).
Ids may reach a subscriber twice; sidecars keep a set, so repeats cost nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import orjson

from asya.gateway.models import CANCELLED, JobUpdate, utcnow
from asya.gateway.store import JobStore

logger = logging.getLogger(__name__)

#: How long a cancelled job's id is sent to newly connected sidecars.
RETENTION = timedelta(hours=24)
#: A poll looks back this far past the previous one: a cancel committed late (its timestamp is
#: taken before the commit, on another replica's clock) is still seen.
POLL_OVERLAP = timedelta(seconds=10)
KEEPALIVE = b": keep-alive\n\n"


def cancelled_event(job_ids: list[str]) -> bytes:
    return b"event: cancelled\ndata: " + orjson.dumps({"job_ids": job_ids}) + b"\n\n"


class CancellationFeed:
    """Fans cancelled job ids out to this replica's ``/cancellations`` streams."""

    def __init__(self, store: JobStore, poll_interval: float) -> None:
        self._store = store
        self.poll_interval = poll_interval
        self._subscribers: set[asyncio.Queue[list[str] | None]] = set()
        self._seen: dict[str, datetime] = {}  # ids already sent, and when they were cancelled
        self._closed = False

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def announce(self, job_id: str, cancelled_at: datetime | None = None) -> None:
        if job_id in self._seen:
            return
        self._seen[job_id] = cancelled_at or utcnow()
        for queue in self._subscribers:
            queue.put_nowait([job_id])

    async def on_update(self, update: JobUpdate) -> None:
        """The store's update callback (SQLite) or the listener's (PostgreSQL)."""
        if update.status == CANCELLED:
            self.announce(update.job_id, update.timestamp)

    async def recent(self) -> list[str]:
        """Ids of the jobs cancelled within the retention window (what a new stream starts with)."""
        return [job_id for job_id, _ in await self._store.cancelled_since(utcnow() - RETENTION)]

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[list[str] | None]]:
        """New cancels while the block runs land in the queue; None means shutting down."""
        queue: asyncio.Queue[list[str] | None] = asyncio.Queue()
        if self._closed:
            queue.put_nowait(None)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def close(self) -> None:
        self._closed = True
        for queue in self._subscribers:
            queue.put_nowait(None)

    async def poll(self) -> None:
        """Forever (cancel to stop): announce cancels this replica was not told about."""
        since = utcnow()
        while True:
            await asyncio.sleep(self.poll_interval)
            now = utcnow()
            try:
                found = await self._store.cancelled_since(since - POLL_OVERLAP)
            except Exception as exc:  # the database is away: try again next round
                logger.warning("could not read cancelled jobs: %s", exc)
                continue
            since = now
            for job_id, cancelled_at in found:
                self.announce(job_id, cancelled_at)
            horizon = now - (POLL_OVERLAP + timedelta(seconds=self.poll_interval)) * 2
            for job_id in [key for key, moment in self._seen.items() if moment < horizon]:
                del self._seen[job_id]


async def cancellation_events(feed: CancellationFeed, keepalive: float) -> AsyncIterator[bytes]:
    """The ``GET /cancellations`` stream: the recent ids in one event, then one per cancel."""
    async with feed.subscribe() as queue:
        try:
            recent = await feed.recent()
        except Exception as exc:  # the response has started: end it, the sidecar reconnects
            logger.warning("cancellation stream ended: %s", exc)
            return
        yield cancelled_event(recent)
        while True:
            try:
                job_ids = await asyncio.wait_for(queue.get(), keepalive)
            except TimeoutError:
                yield KEEPALIVE
                continue
            if job_ids is None:
                return
            yield cancelled_event(job_ids)
