"""Where to cut a model into stages: balance the slowest stage, from profiled times.

A model is profiled as a chain of its finest segments (between consecutive places where a
single tensor crosses the graph). Grouping consecutive segments into ``parts`` stages so
that the slowest stage is as fast as possible gives both the shortest blocking for limited
preemption and the highest throughput when the stages run as a pipeline on different lanes
(IEEE Access 2023: the pipeline runs at the pace of its slowest stage).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import cache


def balanced_cuts(segment_ns: Sequence[int], parts: int) -> tuple[int, ...]:
    """Indices ``i`` (0 < i < len) where to cut the segment chain into at most ``parts``
    groups so that the largest group total is minimal; ties prefer earlier cuts.

    Exact (dynamic programming over prefix sums), O(parts * n^2) for n segments.
    """
    if parts < 1:
        raise ValueError(f'parts must be >= 1, got {parts}')
    if any(t < 0 for t in segment_ns):
        raise ValueError(f'segment times must be >= 0, got {list(segment_ns)}')
    n = len(segment_ns)
    prefix = [0]
    for t in segment_ns:
        prefix.append(prefix[-1] + t)

    @cache
    def best(end: int, groups: int) -> tuple[int, tuple[int, ...]]:
        """Minimal largest group over segments [0, end) in at most ``groups`` groups."""
        if groups == 1 or end <= 1:
            return prefix[end], ()
        choice: tuple[int, tuple[int, ...]] = (prefix[end], ())
        for cut in range(1, end):
            worst, cuts = best(cut, groups - 1)
            candidate = (max(worst, prefix[end] - prefix[cut]), (*cuts, cut))
            if candidate[0] < choice[0]:
                choice = candidate
        return choice

    return best(n, min(parts, max(n, 1)))[1]


def stage_times(segment_ns: Sequence[int], cuts: Sequence[int]) -> list[int]:
    """Totals of the groups that ``cuts`` makes of the segment chain."""
    bounds = [0, *cuts, len(segment_ns)]
    return [sum(segment_ns[a:b]) for a, b in itertools.pairwise(bounds)]
