"""Fan-out of job updates to the SSE streams and MCP waiters of this process.

Streams subscribe by job id and get an ``asyncio.Queue``; nothing polls the database per
stream, so a thousand idle streams cost a thousand small queues. Updates come from the store
(SQLite: in-process only) or from the one PostgreSQL ``LISTEN`` connection of the process
(:mod:`asya.gateway.listener`), which carries every replica's updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from asya.gateway.models import JobUpdate

logger = logging.getLogger(__name__)


class Hub:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[JobUpdate | None]]] = {}
        self._closed = False

    def watched_jobs(self) -> list[str]:
        return list(self._subscribers)

    def is_watched(self, job_id: str) -> bool:
        return job_id in self._subscribers

    @property
    def subscriber_count(self) -> int:
        return sum(len(queues) for queues in self._subscribers.values())

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[asyncio.Queue[JobUpdate | None]]:
        """Updates of ``job_id`` published while the block runs land in the queue.

        ``None`` in the queue means the gateway is shutting down: stop following the job.
        """
        queue: asyncio.Queue[JobUpdate | None] = asyncio.Queue()
        if self._closed:
            queue.put_nowait(None)
        self._subscribers.setdefault(job_id, set()).add(queue)
        try:
            yield queue
        finally:
            queues = self._subscribers.get(job_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._subscribers[job_id]

    def close(self) -> None:
        """End every subscription now and later ones at once (graceful shutdown).

        Open SSE streams would otherwise hold the server's shutdown until its grace period;
        clients resume with ``Last-Event-ID`` on another replica or after the restart.
        """
        self._closed = True
        for queues in self._subscribers.values():
            for queue in queues:
                queue.put_nowait(None)

    async def publish(self, update: JobUpdate) -> None:
        for queue in self._subscribers.get(update.job_id, ()):
            queue.put_nowait(update)
