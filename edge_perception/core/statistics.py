"""Response-time statistics over many jobs (nanoseconds in, milliseconds out)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ResponseTimes:
    """Summary of response times; all fields in milliseconds (NaN when there were none)."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, response_ns: Sequence[int]) -> ResponseTimes:
        if not response_ns:
            nan = float('nan')
            return cls(0, nan, nan, nan)
        # Plain Python, not numpy: the diagnostics timer computes these in the spinning
        # thread, and numpy.percentile's first call took 16 ms (its lazy set-up), which the
        # analysis then counted as that timer's cost for as long as it remembers.
        values = sorted(ns / 1e6 for ns in response_ns)
        return cls(count=len(values), p50_ms=percentile(values, 50),
                   p99_ms=percentile(values, 99), max_ms=values[-1])


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of sorted ``ordered``, interpolated linearly between the two
    nearest ranks (numpy.percentile's default)."""
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
