"""The KEDA rule and the scale-in cooldown, with time passed in."""

from __future__ import annotations

import pytest

from asya.up.autoscale import Autoscaler, desired_replicas
from asya.up.config import ScalingConfig

RULE = ScalingConfig(min=0, max=3, queue_length=2, polling_interval=1.0, cooldown=10.0)


@pytest.mark.parametrize(
    ("depth", "in_flight", "expected"),
    [(0, 0, 0), (1, 0, 1), (2, 0, 1), (3, 0, 2), (100, 0, 3), (0, 1, 1), (3, 2, 3), (-5, 0, 0)],
)
def test_desired_is_ceil_of_work_over_queue_length_clamped(
    depth: int, in_flight: int, expected: int
) -> None:
    assert desired_replicas(RULE, depth, in_flight) == expected


def test_minimum_is_kept_when_the_queue_is_empty() -> None:
    rule = ScalingConfig(min=2, max=5, queue_length=1)

    assert desired_replicas(rule, 0) == 2


def test_scale_out_is_immediate() -> None:
    scaler = Autoscaler(RULE)

    assert scaler.target(now=0.0, current=0, depth=5) == 3


def test_a_busy_replica_is_not_removed_while_the_queue_is_empty() -> None:
    scaler = Autoscaler(RULE)

    assert scaler.target(now=0.0, current=1, depth=0, in_flight=1) == 1
    assert scaler.target(now=60.0, current=1, depth=0, in_flight=1) == 1


def test_scale_in_waits_for_the_cooldown() -> None:
    scaler = Autoscaler(RULE)

    assert scaler.target(now=0.0, current=3, depth=0) == 3
    assert scaler.target(now=9.0, current=3, depth=0) == 3
    assert scaler.target(now=10.0, current=3, depth=0) == 0


def test_scale_in_goes_to_the_highest_count_desired_during_the_cooldown() -> None:
    scaler = Autoscaler(RULE)

    scaler.target(now=0.0, current=3, depth=0)
    scaler.target(now=5.0, current=3, depth=3)  # wants 2
    assert scaler.target(now=10.0, current=3, depth=0) == 2


def test_new_work_during_the_cooldown_restarts_it() -> None:
    scaler = Autoscaler(RULE)

    scaler.target(now=0.0, current=2, depth=0)
    assert scaler.target(now=8.0, current=2, depth=4) == 2
    assert scaler.target(now=9.0, current=2, depth=0) == 2
    assert scaler.target(now=18.0, current=2, depth=0) == 2
    assert scaler.target(now=19.0, current=2, depth=0) == 0


def test_zero_cooldown_scales_in_at_once() -> None:
    scaler = Autoscaler(ScalingConfig(min=0, max=3, queue_length=1, cooldown=0.0))

    assert scaler.target(now=0.0, current=3, depth=1) == 1
