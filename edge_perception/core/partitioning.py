"""Where to cut a model into stages: balance the slowest stage, from profiled times.

A model is profiled as a chain of its finest segments (between consecutive places where a
single tensor crosses the graph). Grouping consecutive segments into stages so that the
slowest stage is as fast as possible gives both the shortest blocking for limited
preemption and the highest throughput when the stages run as a pipeline on different lanes
(IEEE Access 2023: the pipeline runs at the pace of its slowest stage).

Stage ``k`` runs on the ``k``-th lane, and lanes need not be equally fast: a segment's time
is profiled on every lane's device, so a CPU + GPU pipeline gives the GPU the lion's share.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import cache


def balanced_cuts(lane_segment_ns: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """Indices ``i`` (0 < i < n) where to cut the chain of n segments into at most one
    group per lane (group k runs on lane k; ``lane_segment_ns[k][i]`` is segment i's time
    there) so that the slowest group is as fast as possible; ties prefer fewer cuts, then
    earlier ones.

    Exact (dynamic programming over prefix sums), O(lanes * n^2).
    """
    if not lane_segment_ns:
        raise ValueError('at least one lane is needed')
    n = len(lane_segment_ns[0])
    if any(len(row) != n for row in lane_segment_ns):
        raise ValueError(f'every lane needs a time for each of the {n} segments')
    if any(t < 0 for row in lane_segment_ns for t in row):
        raise ValueError(f'segment times must be >= 0, got {[list(r) for r in lane_segment_ns]}')
    prefix = [list(itertools.accumulate(row, initial=0)) for row in lane_segment_ns]

    @cache
    def best(end: int, groups: int) -> tuple[int, tuple[int, ...]]:
        """Minimal slowest group over segments [0, end) in exactly ``groups`` groups."""
        lane = prefix[groups - 1]
        if groups == 1:
            return lane[end], ()
        earlier = [(best(cut, groups - 1), cut) for cut in range(groups - 1, end)]
        return min(((max(worst, lane[end] - lane[cut]), (*cuts, cut))
                    for (worst, cuts), cut in earlier), key=lambda option: option[0])

    options = [best(n, groups) for groups in range(1, min(len(lane_segment_ns), n) + 1)]
    return min(options, key=lambda option: option[0])[1] if options else ()


def stage_times(lane_segment_ns: Sequence[Sequence[int]], cuts: Sequence[int]) -> list[int]:
    """Time of each group that ``cuts`` makes of the segment chain, on its own lane."""
    bounds = [0, *cuts, len(lane_segment_ns[0])]
    return [sum(lane_segment_ns[k][a:b])
            for k, (a, b) in enumerate(itertools.pairwise(bounds))]
