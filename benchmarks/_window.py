"""The measurement window every throughput run shares, taken from raw timestamps.

A run's rate is ``N / (N-th completion - first start)``: from the moment the first step
takes its first message (a *start marker* the system under test writes) to the N-th message
arriving at the output. Taking the rate between the first and the last *arrival* instead
flatters a system whose steps share one FIFO queue (Celery's chain runs every first step
before any chain finishes, so its first arrival comes near the end); this window is the same
for every system, pipelined or not.

Timestamps are ``time.time()`` so that the children's markers and the driver's arrivals are
on one clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

WINDOW_DEFINITION = (
    "window: from the first step's first message (a timestamp the first step writes) "
    "to the N-th message at the output; msg/s = N / window"
)


def read_marker(path: Path) -> float | None:
    """The earliest start written to ``path`` (one line per process), or None if none yet."""
    try:
        lines = path.read_text().split()
    except FileNotFoundError:
        return None
    starts = [float(line) for line in lines if line]
    return min(starts) if starts else None


@dataclass(frozen=True)
class Window:
    """Raw timestamps of one throughput run (seconds since the epoch)."""

    count: int
    first_start: float
    first_completion: float
    last_completion: float

    @property
    def seconds(self) -> float:
        return max(self.last_completion - self.first_start, 1e-9)

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def arrivals_only_rate(self) -> float:
        """The misleading figure: (N - 1) between the first and the last arrival."""
        span = self.last_completion - self.first_completion
        return (self.count - 1) / span if span > 0 else 0.0

    def describe(self) -> str:
        return (
            f"first start 0.000 s, first completion {self.first_completion - self.first_start:.3f}"
            f" s, N-th completion {self.seconds:.3f} s → {self.count} / {self.seconds:.3f} s = "
            f"{self.rate:,.0f} msg/s (first → last arrival alone would say "
            f"{self.arrivals_only_rate:,.0f})"
        )


class Arrivals:
    """Times at which messages reach the output, and the runs measured from them."""

    def __init__(self) -> None:
        self.arrivals: asyncio.Queue[float] = asyncio.Queue()

    def arrived(self) -> None:
        self.arrivals.put_nowait(time.time())

    async def throughput(
        self,
        count: int,
        within: float,
        marker: Path,
        on_start: Callable[[], object] | None = None,
        check_alive: Callable[[], object] | None = None,
    ) -> Window:
        """Wait for ``count`` outputs; ``on_start`` runs as soon as the start marker appears.

        ``check_alive`` raises if the system under test died before its first message.
        """
        watcher = asyncio.create_task(_watch_marker(marker, on_start, check_alive))
        try:
            deadline = time.monotonic() + within
            first = last = await _first_of(self.arrivals.get(), watcher, within)
            for _ in range(count - 1):
                last = await asyncio.wait_for(self.arrivals.get(), deadline - time.monotonic())
            await asyncio.wait_for(watcher, 5.0)
        finally:
            watcher.cancel()
        first_start = read_marker(marker)
        if first_start is None or first_start > first:
            raise RuntimeError(f"start marker {marker} missing or after the first completion")
        return Window(count, first_start, first, last)

    async def latencies(self, send: Callable[[], Awaitable[None]], samples: int) -> list[float]:
        """Round trips (ms) of ``samples`` messages sent one at a time by ``send()``."""
        result = []
        for _ in range(samples):
            started = time.time()
            await send()
            arrived = await asyncio.wait_for(self.arrivals.get(), 30.0)
            result.append((arrived - started) * 1000)
        return result


async def _first_of(arrival: Awaitable[float], watcher: asyncio.Task[None], within: float) -> float:
    """The first arrival, unless the watcher fails first (a child died)."""
    getter = asyncio.ensure_future(arrival)
    deadline = time.monotonic() + within
    await asyncio.wait([getter, watcher], timeout=within, return_when=asyncio.FIRST_COMPLETED)
    if watcher.done() and watcher.exception() is not None:
        getter.cancel()
        watcher.result()
    if not getter.done():  # the marker is there: only the arrival is left to wait for
        await asyncio.wait([getter], timeout=max(0.0, deadline - time.monotonic()))
    if not getter.done():
        getter.cancel()
        raise TimeoutError(f"no message reached the output within {within:.0f} s")
    return getter.result()


async def _watch_marker(
    marker: Path, on_start: Callable[[], object] | None, check_alive: Callable[[], object] | None
) -> None:
    while read_marker(marker) is None:
        if check_alive is not None:
            check_alive()
        await asyncio.sleep(0.002)
    if on_start is not None:
        on_start()
