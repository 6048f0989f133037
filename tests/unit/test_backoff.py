"""The shared exponential backoff."""

from __future__ import annotations

import math

from asya.backoff import Backoff, backoff_delay


def test_delays_double_from_the_first_up_to_the_cap() -> None:
    backoff = Backoff(0.5, cap=5.0)

    delays = [backoff.next() for _ in range(6)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff.failures == 6


def test_reset_after_a_success_starts_again_from_the_first_delay() -> None:
    backoff = Backoff(0.1, cap=2.0)
    backoff.next()
    backoff.next()

    backoff.reset()

    assert backoff.failures == 0
    assert backoff.next() == 0.1


def test_without_a_cap_delays_keep_growing() -> None:
    backoff = Backoff(0.1)

    assert [backoff.next() for _ in range(3)] == [0.1, 0.2, 0.4]
    assert backoff.cap == math.inf


def test_another_factor_grows_by_that_factor() -> None:
    backoff = Backoff(1.0, cap=100.0, factor=3.0)

    assert [backoff.next() for _ in range(4)] == [1.0, 3.0, 9.0, 27.0]


def test_a_very_long_failure_streak_stays_at_the_cap() -> None:
    assert backoff_delay(5000, first=0.5, cap=30.0) == 30.0
    assert backoff_delay(5000, first=0.5, cap=math.inf) == math.inf


def test_the_delay_for_a_failure_count_needs_no_state() -> None:
    assert [backoff_delay(n, first=0.01, cap=0.05) for n in range(5)] == [
        0.01,
        0.02,
        0.04,
        0.05,
        0.05,
    ]
