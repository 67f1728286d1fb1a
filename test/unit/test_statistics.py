"""Response-time percentiles, computed without numpy, agree with numpy's."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from edge_perception.core.statistics import ResponseTimes, percentile


@pytest.mark.parametrize('count', [1, 2, 7, 100, 501])
def test_percentiles_match_numpy_s_linear_interpolation(count: int) -> None:
    rng = random.Random(count)
    values = sorted(rng.uniform(0, 50) for _ in range(count))
    for q in (0, 1, 50, 90, 99, 100):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_response_times_are_reported_in_milliseconds() -> None:
    times = ResponseTimes.of([4_000_000, 1_000_000, 2_000_000, 3_000_000])
    assert (times.count, times.p50_ms, times.max_ms) == (4, 2.5, 4.0)
    assert times.p99_ms == pytest.approx(3.97)
    assert math.isnan(ResponseTimes.of([]).p50_ms)
