"""Exponential backoff: the one way Asya spaces out retries, reconnects and restarts.

Every loop that waits between tries (publishing, broker start-up, the LISTEN connection, outcome
reports, stream reconnects, SQLite polling, process restarts) asks a :class:`Backoff` for its
next delay instead of doubling a number by hand; each keeps its own first delay and cap.
"""

from __future__ import annotations

import math


def backoff_delay(failures: int, *, first: float, cap: float, factor: float = 2.0) -> float:
    """The delay after ``failures`` failures in a row: ``first * factor**failures``, capped."""
    try:
        return min(cap, first * factor ** max(failures, 0))
    except OverflowError:  # factor**failures past the float range is past any cap
        return cap


class Backoff:
    """Delays growing from ``first`` by ``factor`` up to ``cap``; :meth:`reset` after a success.

    ``failures`` counts the delays handed out since the last reset (callers report it, or give
    up after a number of tries).
    """

    def __init__(self, first: float, cap: float = math.inf, factor: float = 2.0) -> None:
        self.first = first
        self.cap = cap
        self.factor = factor
        self.failures = 0

    def next(self) -> float:
        """Count one more failure and return the delay to wait before the next try."""
        delay = backoff_delay(self.failures, first=self.first, cap=self.cap, factor=self.factor)
        self.failures += 1
        return delay

    def reset(self) -> None:
        """Start again from ``first`` (the thing worked)."""
        self.failures = 0
