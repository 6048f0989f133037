"""Driver of the pipeline benchmark on the SQLite transport (the embedded default of ``asya up``).

It uses Asya's own ``SqliteTransport`` to declare the queues and preload the input, and counts
arrivals by polling the depth of the output queue (a read: WAL readers never block the actors'
writes), so an arrival's time is known to within the poll interval (1 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

from asya.transports import open_transport
from benchmarks._window import Arrivals

POLL_SECONDS = 0.001


class SqliteDriver(Arrivals):
    """Publishes into a pipeline on one SQLite file and watches its output queue's depth."""

    def __init__(self, path: Path, output_queue: str) -> None:
        super().__init__()
        self.url = f"sqlite:///{path}"  # an absolute path: sqlite:////tmp/…
        self.output_queue = output_queue
        self._transport = open_transport(self.url)
        self._watcher: asyncio.Task[None] | None = None

    async def open(self, queues: Sequence[str]) -> None:
        await self._transport.connect()
        for name in queues:
            await self._transport.declare_queue(name)

    async def preload(self, queue: str, body: bytes, count: int) -> None:
        for _ in range(count):
            await self._transport.publish(queue, body)
        self._watcher = asyncio.create_task(self._watch())

    async def publish(self, queue: str, body: bytes) -> None:
        await self._transport.publish(queue, body)

    async def _watch(self) -> None:
        seen = 0
        while True:
            depth = await self._transport.depth(self.output_queue)
            for _ in range(depth - seen):
                self.arrived()
            seen = max(seen, depth)
            await asyncio.sleep(POLL_SECONDS)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self._transport.close()
