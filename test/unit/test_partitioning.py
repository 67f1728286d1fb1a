"""Choosing where to cut a model: balance the slowest stage (checked against brute force)."""

from __future__ import annotations

import itertools
import random

import pytest

from edge_perception.core.partitioning import balanced_cuts, stage_times


def brute_force(lanes: list[list[int]]) -> int:
    n = len(lanes[0])
    best = sum(lanes[0])
    for k in range(1, min(len(lanes), n)):
        for cuts in itertools.combinations(range(1, n), k):
            best = min(best, max(stage_times(lanes, cuts)))
    return best


def test_two_stages_split_at_the_balance_point() -> None:
    # The detector's shape: a cheap stem, heavy middle, light head; two equal CPU lanes.
    detector = [1, 12, 17, 21, 61, 19, 1, 2]
    assert balanced_cuts([detector, detector]) == (4,)
    assert stage_times([detector, detector], (4,)) == [51, 83]


def test_a_faster_second_lane_takes_the_larger_share() -> None:
    cpu = [1, 12, 17, 21, 61, 19, 1, 2]
    gpu = [t // 10 for t in cpu]  # 10x faster: only the stem stays on the CPU
    cuts = balanced_cuts([cpu, gpu])
    assert cuts == (1,)
    assert stage_times([cpu, gpu], cuts) == [1, 11]


def test_a_slower_second_lane_gets_only_the_tail() -> None:
    cpu = [4, 4, 4, 4]
    slow = [40, 40, 40, 1]
    assert balanced_cuts([cpu, slow]) == (3,)


def test_one_lane_means_no_cut() -> None:
    assert balanced_cuts([[5, 5, 5]]) == ()


def test_more_lanes_than_segments_cuts_everywhere() -> None:
    assert balanced_cuts([[3, 4]] * 5) == (1,)


@pytest.mark.parametrize('seed', range(40))
def test_matches_brute_force_on_random_chains(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 8)
    lanes = [[rng.randint(0, 50) for _ in range(n)] for _ in range(rng.randint(1, 4))]
    cuts = balanced_cuts(lanes)
    assert list(cuts) == sorted(set(cuts))
    assert all(0 < c < n for c in cuts)
    assert len(cuts) < len(lanes)
    assert max(stage_times(lanes, cuts)) == brute_force(lanes)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match='at least one lane'):
        balanced_cuts([])
    with pytest.raises(ValueError, match='segment times must be >= 0'):
        balanced_cuts([[1, -2], [1, 1]])
    with pytest.raises(ValueError, match='a time for each of the 2 segments'):
        balanced_cuts([[1, 2], [1]])
