"""Response-time statistics over many jobs (nanoseconds in, milliseconds out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


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
        values = np.asarray(response_ns, dtype=np.float64) / 1e6
        return cls(
            count=len(values),
            p50_ms=float(np.percentile(values, 50)),
            p99_ms=float(np.percentile(values, 99)),
            max_ms=float(values.max()),
        )
