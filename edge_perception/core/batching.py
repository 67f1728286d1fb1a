"""When several frames may share one inference call without breaking a deadline.

Two rules from the research this package builds on:

* Kum et al. (Sensors 2022): a stream that batches B frames waits for B - 1 more frames and
  then runs the batch, so its first frame's response is (B - 1) * frame period + latency(B);
  the batch size is the largest B that keeps this within the deadline.
* RT-mDL GPU packing: jobs of the same model that are ready together (several cameras or
  tasks) run as one batch when the batch's latency still meets every member's deadline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def largest_feasible_batch(latency_ns: Mapping[int, int], *, frame_period_ns: int,
                           deadline_ns: int) -> int:
    """Largest measured batch size B with (B - 1) * period + latency(B) <= deadline (>= 1)."""
    feasible = [b for b, latency in latency_ns.items()
                if b >= 1 and (b - 1) * frame_period_ns + latency <= deadline_ns]
    return max(feasible, default=1)


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
