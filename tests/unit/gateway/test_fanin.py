"""Fan-in at the job level: when a branch tree has ended, its ordered result, its percent."""

from __future__ import annotations

import itertools
import random

import pytest

from asya.gateway import fanin
from asya.gateway.fanin import Leaf, Path


def flat(n: int) -> list[Path]:
    return [((i, n),) for i in range(n)]


def nested(outer: int, inner: int) -> list[Path]:
    return [((i, outer), (j, inner)) for i in range(outer) for j in range(inner)]


def ok(path: Path) -> Leaf:
    return Leaf(path, True, result=[i for i, _ in path])


def test_parse_branch_reads_levels_outermost_first() -> None:
    value = [{"index": 2, "count": 5}, {"index": 0, "count": 4}]
    assert fanin.parse_branch(value) == ((2, 5), (0, 4))
    assert fanin.path_key(fanin.parse_branch(value)) == "2/5.0/4"
    assert fanin.branch_json(((2, 5), (0, 4))) == value


@pytest.mark.parametrize("trunk", [None, []])
def test_no_branch_is_the_trunk(trunk: object) -> None:
    assert fanin.parse_branch(trunk) == ()


@pytest.mark.parametrize(
    "bad",
    [
        "0/2",
        {"index": 0, "count": 2},
        [{"index": 2, "count": 2}],
        [{"index": -1, "count": 2}],
        [{"index": True, "count": 2}],
        [{"index": 0}],
        [[0, 2]],
        [{"index": "0", "count": "2"}],
    ],
)
def test_a_malformed_branch_is_refused(bad: object) -> None:
    with pytest.raises(fanin.BadBranch):
        fanin.parse_branch(bad)


@pytest.mark.parametrize(
    ("ended", "complete"),
    [
        ([], False),
        (flat(1), True),
        (flat(10), True),
        (flat(10)[:9], False),
        (flat(10)[1:], False),
        (nested(3, 4), True),
        (nested(3, 4)[:-1], False),
        # branch 1 of 3 fanned out to nothing: it ended itself, as a leaf
        ([((0, 3), (0, 2)), ((0, 3), (1, 2)), ((1, 3),), ((2, 3), (0, 1))], True),
        # branch 2 not heard from at all
        ([((0, 3), (0, 2)), ((0, 3), (1, 2)), ((1, 3),)], False),
        # a nested fan-out whose siblings are unknown beyond one leaf
        ([((0, 2), (0, 4)), ((1, 2),)], False),
        # uneven depth: 2 → (3, nothing, 2 → 2)
        (
            [
                ((0, 2), (0, 3)),
                ((0, 2), (1, 3)),
                ((0, 2), (2, 3)),
                ((1, 2), (0, 2), (0, 2)),
                ((1, 2), (0, 2), (1, 2)),
                ((1, 2), (1, 2)),
            ],
            True,
        ),
    ],
)
def test_tree_complete(ended: list[Path], complete: bool) -> None:
    assert fanin.tree_complete(ended) is complete


def test_arrival_order_and_duplicates_do_not_change_the_decision() -> None:
    paths = nested(3, 4)
    rng = random.Random(12)
    for _ in range(50):
        arrived = [*paths, *rng.sample(paths, 5)]
        rng.shuffle(arrived)
        decided = fanin.outcome([ok(path) for path in arrived])
        assert decided is not None
        assert decided.result == [[i, j] for i in range(3) for j in range(4)]
        assert decided.leaves == 12


def test_every_prefix_of_an_arrival_order_is_incomplete_until_the_last() -> None:
    paths = flat(5)
    for order in itertools.permutations(paths):
        for seen in range(1, 5):
            assert fanin.outcome([ok(p) for p in order[:seen]]) is None
        assert fanin.outcome([ok(p) for p in order]) is not None


def test_results_are_in_branch_order_depth_first_not_arrival_order() -> None:
    leaves = [Leaf(((i, 10),), True, result=f"r{i}") for i in reversed(range(10))]
    decided = fanin.outcome(leaves)
    assert decided is not None
    assert decided.succeeded
    assert decided.result == [f"r{i}" for i in range(10)]


def test_index_ten_sorts_after_index_two() -> None:
    leaves = [Leaf(((i, 12),), True, result=i) for i in (10, 2, 11, 0, 1, 3, 4, 5, 6, 7, 8, 9)]
    decided = fanin.outcome(leaves)
    assert decided is not None
    assert decided.result == list(range(12))


def test_a_failed_branch_fails_the_job_naming_it_and_keeps_the_others() -> None:
    details = {"failed_step": "upper", "type": "ValueError", "message": "bad"}
    leaves = [
        Leaf(((i, 5),), True, result=i)
        if i != 2
        else Leaf(((2, 5),), False, error="processing_error: bad", error_details=details)
        for i in range(5)
    ]
    decided = fanin.outcome(leaves)
    assert decided is not None
    assert not decided.succeeded
    assert decided.result == [0, 1, None, 3, 4]
    assert decided.error == (
        "1 of 5 branches failed; first: branch 2/5 at step 'upper': processing_error: bad"
    )
    assert decided.error_details is not None
    assert decided.error_details["type"] == "ValueError"
    assert decided.error_details["branch"] == [{"index": 2, "count": 5}]
    assert decided.error_details["failed_branches"] == [
        {"branch": [{"index": 2, "count": 5}], "step": "upper", "error": "processing_error: bad"}
    ]


def test_the_first_failed_branch_is_the_first_in_branch_order() -> None:
    leaves = [
        Leaf(((3, 4),), False, error="late"),
        Leaf(((1, 4),), False, error="early"),
        Leaf(((0, 4),), True, result=0),
        Leaf(((2, 4),), True, result=2),
    ]
    decided = fanin.outcome(leaves)
    assert decided is not None
    assert decided.error is not None
    assert decided.error.startswith("2 of 4 branches failed")
    assert "branch 1/4 at step 'unknown': early" in decided.error
    assert [b["error"] for b in (decided.error_details or {})["failed_branches"]] == [
        "early",
        "late",
    ]


def test_percent_weighs_branches_by_their_share_of_the_tree() -> None:
    # 4 branches: one ended, one at 50 %, two not heard from (at the fan-out point, 25 %)
    running = {((1, 4),): 50.0}
    assert fanin.tree_percent([((0, 4),)], running, trunk_percent=25.0) == pytest.approx(
        (100 + 50 + 25 + 25) / 4
    )


def test_percent_of_a_nested_fan_out_uses_the_parent_as_the_fallback() -> None:
    running = {((0, 2),): 60.0}
    ended = [((0, 2), (0, 3))]
    # branch 0: (100 + 60 + 60) / 3; branch 1 not heard from: 0
    assert fanin.tree_percent(ended, running) == pytest.approx((220 / 3) / 2)


def test_percent_stays_below_100_until_the_job_is_terminal() -> None:
    assert fanin.tree_percent(flat(3), {}) == fanin.MAX_OPEN_PERCENT
    assert fanin.tree_percent([], {}) == 0.0


def test_known_leaf_count_counts_unheard_branches_once() -> None:
    assert fanin.known_leaf_count(flat(5)[:2]) == 5
    assert fanin.known_leaf_count([((0, 3), (0, 4))]) == 6
    assert fanin.known_leaf_count(nested(3, 4)) == 12
