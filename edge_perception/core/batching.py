"""When several frames may share one inference call without breaking a deadline.

Two rules, both on measured latencies per batch size:

* :func:`packable` (RT-mDL GPU packing): jobs of the same model that are ready together
  (several cameras or tasks) run as one batch when its latency meets every member's deadline;
* :func:`frame_budget_batch` (Kum et al. 2022): the batch size for consecutive frames of a
  stream: the largest B whose batch keeps up with the camera (latency(B) <= B periods) and
  keeps the batch's first frame, which waits B - 1 periods for the last, in its deadline.
  :class:`BatchSizer` re-evaluates it when the measured latencies drift.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

# A measured latency that moved by more than this share since the last choice re-opens it.
DRIFT = 0.2


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


def frame_budget_batch(latency_ns: Mapping[int, int], *, period_ns: int,
                       deadline_ns: int) -> int:
    """Kum et al.'s batch size: the largest measured B with latency(B) <= B * period and
    (B - 1) * period + latency(B) <= deadline; 1 when none fits (the stream is overloaded
    whatever the batch)."""
    fitting = [size for size, latency in latency_ns.items()
               if latency <= size * period_ns
               and (size - 1) * period_ns + latency <= deadline_ns]
    return max(fitting, default=1)


class BatchSizer:
    """Keeps :func:`frame_budget_batch` current: :meth:`size` re-chooses only when some
    measured latency moved by more than ``drift`` since the last choice (so one noisy
    measurement does not flip the batch size back and forth)."""

    def __init__(self, measure: Callable[[], Mapping[int, int]], *, period_ns: int,
                 deadline_ns: int, drift: float = DRIFT) -> None:
        self._measure = measure
        self._period_ns = period_ns
        self._deadline_ns = deadline_ns
        self._drift = drift
        self._basis: dict[int, int] = {}
        self._size = 1
        self.changes = 0  # re-choices that changed the size (after the first choice)

    def size(self) -> int:
        latencies = dict(self._measure())
        if self._drifted(latencies):
            size = frame_budget_batch(latencies, period_ns=self._period_ns,
                                      deadline_ns=self._deadline_ns)
            self.changes += bool(self._basis) and size != self._size
            self._size, self._basis = size, latencies
        return self._size

    def _drifted(self, latencies: Mapping[int, int]) -> bool:
        if set(latencies) != set(self._basis):
            return True
        return any(abs(latencies[n] - old) > self._drift * old for n, old in self._basis.items())
