"""When several jobs may share one inference call without breaking a deadline.

RT-mDL GPU packing: jobs of the same model that are ready together (several cameras or
tasks) run as one batch when the batch's measured latency still meets every member's
deadline. (Kum et al.'s rule, batching consecutive frames of one stream, is not used: a
job never waits for a later frame.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def packable(latency_ns: Mapping[int, int], *, now_ns: int,
             deadlines_ns: Sequence[int]) -> int:
    """How many of the ready jobs (deadlines sorted most urgent first) can run as one batch:
    the largest n with a measured latency(n) such that now + latency(n) meets the first n
    deadlines. 1 when no batch larger than one is measured or feasible."""
    best = 1
    for n in range(2, len(deadlines_ns) + 1):
        latency = latency_ns.get(n)
        if latency is not None and now_ns + latency <= min(deadlines_ns[:n]):
            best = n
    return best
