"""The inference-engine boundary: what lanes and task pipelines call, whatever runs the model."""

from __future__ import annotations

import statistics
import time
from typing import Protocol

import numpy as np
import numpy.typing as npt


class InferenceEngine(Protocol):
    """A compiled model for one input shape on one device.

    ``run`` takes and returns float32 arrays; it may be called from one lane thread at a time.
    """

    @property
    def device(self) -> str: ...

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    @property
    def latency_ns(self) -> int | None:
        """Smoothed latency of recent runs (None before the first)."""
        ...

    def run(self, inputs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...


def median_latency_ns(engine: InferenceEngine, *, runs: int,
                      inputs: npt.NDArray[np.float32] | None = None) -> int:
    """Median wall time of ``runs`` calls after one warm-up call (zeros by default: the
    compiled code has no data-dependent path)."""
    if inputs is None:
        inputs = np.zeros(engine.input_shape, np.float32)
    engine.run(inputs)
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        engine.run(inputs)
        times.append(time.perf_counter_ns() - start)
    return int(statistics.median(times))
