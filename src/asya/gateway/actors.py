"""``GET /actors``: the queues the gateway's jobs travel and how they are doing
(docs/reference/gateway-api.md#actors).

The queues are every step of every tool's route, then happy-end, error-end and the dead-letter
queue. For each the transport says its depth and consumers (``None`` where it cannot tell);
``depth_per_second`` is the depth's change since the previous answer (positive: the queue
grows), kept per gateway process. Under ``asya up`` the mesh's status file adds replicas and
state. Every broker question has a timeout and a failure is reported per queue, never a 500.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asya.gateway.tools import ToolRegistry
from asya.sidecar.router import DEAD_LETTER_QUEUE
from asya.transports.base import Transport
from asya.up.status import read_status

BROKER_TIMEOUT = 3.0
#: Samples closer together than this keep the previous rate (a refresh storm is not a trend).
_MIN_RATE_INTERVAL = 0.5


@dataclass(frozen=True)
class WatchedQueue:
    name: str
    role: str  # step, happy-end, error-end or dead-letter
    tools: tuple[str, ...] = ()


def watched_queues(tools: ToolRegistry, happy_end: str, error_end: str) -> list[WatchedQueue]:
    """Route steps in the order the tools file first names them, then the crew and dead letters."""
    users: dict[str, list[str]] = {}
    for tool in tools:
        for step in tool.route:
            named = users.setdefault(step, [])
            if tool.name not in named:
                named.append(tool.name)
    queues = [WatchedQueue(name, "step", tuple(names)) for name, names in users.items()]
    for name, role in (
        (happy_end, "happy-end"),
        (error_end, "error-end"),
        (DEAD_LETTER_QUEUE, "dead-letter"),
    ):
        if name not in users:
            queues.append(WatchedQueue(name, role))
    return queues


@dataclass
class _Sample:
    depth: int
    at: float
    rate: float | None = None


class ActorsProbe:
    """Answers ``GET /actors``; remembers the last depth per queue to derive a rate."""

    def __init__(
        self,
        transport: Transport,
        queues: list[WatchedQueue],
        status_file: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.transport = transport
        self.clock = clock
        self.queues = queues
        self.status_file = Path(status_file) if status_file else None
        self._samples: dict[str, _Sample] = {}

    async def snapshot(self) -> dict[str, Any]:
        mesh = read_status(self.status_file) if self.status_file else None
        members: dict[str, Any] = {}
        if mesh is not None:
            members = {**(mesh.get("crew") or {}), **(mesh.get("actors") or {})}
        now = self.clock()
        rows = await asyncio.gather(*(self._queue(queue, now) for queue in self.queues))
        for row in rows:
            row.update(_replicas(members.get(row["queue"])))
        return {"actors": rows, "mesh": mesh is not None}

    async def _queue(self, queue: WatchedQueue, now: float) -> dict[str, Any]:
        row: dict[str, Any] = {
            "queue": queue.name,
            "role": queue.role,
            "tools": list(queue.tools),
            "depth": None,
            "consumers": None,
            "depth_per_second": None,
            "error": None,
        }
        try:
            async with asyncio.timeout(BROKER_TIMEOUT):
                await self.transport.connect()
                row["depth"] = await self.transport.depth(queue.name)
                row["consumers"] = await self.transport.consumers(queue.name)
        except Exception as exc:  # transports raise their own errors; say which, per queue
            row["error"] = str(exc) or type(exc).__name__
            return row
        row["depth_per_second"] = self._rate(queue.name, row["depth"], now)
        return row

    def _rate(self, queue: str, depth: int, now: float) -> float | None:
        previous = self._samples.get(queue)
        if previous is None:
            self._samples[queue] = _Sample(depth, now)
            return None
        elapsed = now - previous.at
        if elapsed < _MIN_RATE_INTERVAL:
            return previous.rate
        rate = round((depth - previous.depth) / elapsed, 2)
        self._samples[queue] = _Sample(depth, now, rate)
        return rate


def _replicas(member: Any) -> dict[str, Any]:
    """``replicas``/``desired``/``state`` from the mesh's status of one actor (None outside
    ``asya up`` or for a queue the mesh does not run)."""
    if not isinstance(member, dict):
        return {"replicas": None, "desired": None, "state": None}
    return {
        "replicas": member.get("replicas"),
        "desired": member.get("desired", member.get("replicas")),
        "state": member.get("state", "running"),
    }
