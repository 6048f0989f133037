"""The scaling rule of ``asya up``: KEDA's queue-length rule with a scale-in cooldown.

Pure logic (time is passed in), so the rule is tested without processes. KEDA computes
``desired = ceil(depth / queue_length)`` clamped to ``[min, max]``. Queue depth counts only
ready messages, so the messages replicas are working on are added to it: a busy replica is
work too and must not be removed while it finishes. Scaling out happens at once; scaling in
only after the desired count has stayed below the current one for ``cooldown`` seconds, and
then to the highest count desired during that window (the HPA's stabilization window).
"""

from __future__ import annotations

import math
from collections import deque

from asya.up.model import ScalingConfig


def desired_replicas(rule: ScalingConfig, depth: int, in_flight: int = 0) -> int:
    """``ceil((depth + in_flight) / queue_length)`` clamped to ``[min, max]``."""
    work = max(0, depth) + max(0, in_flight)
    return max(rule.min, min(rule.max, math.ceil(work / rule.queue_length)))


class Autoscaler:
    """Turns a stream of depth observations into a replica target for one actor."""

    def __init__(self, rule: ScalingConfig) -> None:
        self.rule = rule
        self._lower_since: float | None = None
        self._window: deque[tuple[float, int]] = deque()

    def target(self, now: float, current: int, depth: int, in_flight: int = 0) -> int:
        """How many replicas to run now, given ``current`` running ones."""
        desired = desired_replicas(self.rule, depth, in_flight)
        if desired >= current:
            self._lower_since = None
            self._window.clear()
            return desired
        if self._lower_since is None:
            self._lower_since = now
        self._window.append((now, desired))
        while self._window and self._window[0][0] < now - self.rule.cooldown:
            self._window.popleft()
        if now - self._lower_since < self.rule.cooldown:
            return current
        stable = max(d for _, d in self._window)
        self._lower_since = None
        self._window.clear()
        return stable
