"""Choosing where to cut a model: balance the slowest stage (checked against brute force)."""

from __future__ import annotations

import itertools
import random

import pytest

from edge_perception.core.partitioning import balanced_cuts, stage_times


def brute_force(segments: list[int], parts: int) -> int:
    n = len(segments)
    best = sum(segments)
    for k in range(1, min(parts, n)):
        for cuts in itertools.combinations(range(1, n), k):
            best = min(best, max(stage_times(segments, cuts)))
    return best


def test_two_stages_split_at_the_balance_point() -> None:
    # The detector's shape: a cheap stem, heavy middle, light head.
    assert balanced_cuts([1, 12, 17, 21, 61, 19, 1, 2], 2) == (4,)
    assert stage_times([1, 12, 17, 21, 61, 19, 1, 2], (4,)) == [51, 83]


def test_one_part_means_no_cut() -> None:
    assert balanced_cuts([5, 5, 5], 1) == ()


def test_more_parts_than_segments_cuts_everywhere() -> None:
    assert balanced_cuts([3, 4], 5) == (1,)


@pytest.mark.parametrize('seed', range(40))
def test_matches_brute_force_on_random_chains(seed: int) -> None:
    rng = random.Random(seed)
    segments = [rng.randint(0, 50) for _ in range(rng.randint(1, 8))]
    parts = rng.randint(1, 4)
    cuts = balanced_cuts(segments, parts)
    assert list(cuts) == sorted(set(cuts))
    assert all(0 < c < len(segments) for c in cuts)
    assert len(cuts) < parts
    assert max(stage_times(segments, cuts)) == brute_force(segments, parts)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match='parts must be >= 1'):
        balanced_cuts([1], 0)
    with pytest.raises(ValueError, match='segment times must be >= 0'):
        balanced_cuts([1, -2], 2)
