"""Per-task bookkeeping of job outcomes: counters, response times, execution-time estimates."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from edge_perception.core.jobs import JobOutcome
from edge_perception.core.statistics import ResponseTimes

# Recent outcomes kept for percentiles and execution-time estimates.
HISTORY = 500
# Jobs behind the recent miss ratio that diagnostics levels are judged by.
RECENT = 50
# After this many stale drops in a row the next job runs regardless: only a job that runs can
# renew the execution-time estimate, and one slow measurement (a cold first run, a burst of
# contention) would otherwise get every later job dropped as stale, forever.
STALE_PROBE = 3


@dataclass
class TaskStats:
    """Everything /diagnostics reports about one task; updated from lane outcomes.

    ``window_*`` counts restart at every :meth:`take_window` (the adaptation period).
    """

    released: int = 0
    skipped: int = 0  # frames inside the task's period, or superseded by a newer one
    refused: int = 0  # frames that arrived while the task was isolated (fault_guard)
    completed: int = 0
    late: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    overruns: int = 0
    window_jobs: int = 0
    window_misses: int = 0
    stale_streak: int = 0
    _recent_missed: deque[bool] = field(default_factory=lambda: deque(maxlen=RECENT))
    _response_ns: deque[int] = field(default_factory=lambda: deque(maxlen=HISTORY))
    _exec_ns: deque[int] = field(default_factory=lambda: deque(maxlen=HISTORY))
    _stage_ns: deque[tuple[int, ...]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    _transport_ns: deque[int] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def record(self, outcome: JobOutcome, *, budget_ns: int | None) -> bool:
        """Account ``outcome``; True when it overran ``budget_ns``."""
        self.window_jobs += 1
        self._recent_missed.append(outcome.missed)
        if outcome.missed:
            self.window_misses += 1
        self.stale_streak = self.stale_streak + 1 if outcome.dropped == 'stale' else 0
        if outcome.dropped is not None:
            self.drops[outcome.dropped] += 1
        else:
            self.completed += 1
            self.late += int(outcome.missed)
            self._response_ns.append(outcome.response_ns)
        if outcome.dropped is None and outcome.exec_ns > 0:  # whole jobs only
            self._exec_ns.append(outcome.exec_ns)
            self._stage_ns.append(outcome.stage_ns)
        overran = budget_ns is not None and outcome.exec_ns > budget_ns
        self.overruns += overran
        return overran

    @property
    def misses(self) -> int:
        """Late completions plus every drop (stale, displaced, aborted, failed)."""
        return self.late + sum(self.drops.values())

    @property
    def miss_ratio(self) -> float:
        finished = self.completed + sum(self.drops.values())
        return self.misses / finished if finished else 0.0

    @property
    def recent_miss_ratio(self) -> float:
        """Miss ratio over the last RECENT jobs (what a live monitor should show)."""
        if not self._recent_missed:
            return 0.0
        return sum(self._recent_missed) / len(self._recent_missed)

    def response_times(self) -> ResponseTimes:
        return ResponseTimes.of(list(self._response_ns))

    def typical_exec_ns(self) -> int:
        """Median execution time of recent jobs (0 before the first one)."""
        return int(np.median(self._exec_ns)) if self._exec_ns else 0

    def expected_exec_ns(self) -> int:
        """What the next job will take (median of recent ones): a job that cannot finish in
        this time before its deadline is dropped before it starts, so the lane spends its
        time on jobs that can still make it (the fastest time, tried before, let jobs start
        that then finished late: 0.59 vs 0.47 overall miss ratio in the executor
        benchmark). 0 (no estimate: the job runs) before the first job and after
        STALE_PROBE stale drops in a row."""
        if self.stale_streak >= STALE_PROBE:
            return 0
        return self.typical_exec_ns()

    def record_transport(self, transport_ns: int) -> None:
        """A released frame's age when its process received it (taken to received)."""
        self._transport_ns.append(transport_ns)

    def transport_max_ns(self) -> int | None:
        """Longest recent transport (None where no frame's stamp was on this clock)."""
        return max(self._transport_ns, default=None)

    def wcet_estimate_ns(self) -> int:
        return max(self._exec_ns, default=0)

    def stage_wcets_ns(self) -> tuple[int, ...]:
        """Per-stage maxima over recent completed jobs with the most common stage count."""
        if not self._stage_ns:
            return ()
        counts = Counter(len(s) for s in self._stage_ns)
        length = counts.most_common(1)[0][0]
        same = [s for s in self._stage_ns if len(s) == length]
        return tuple(int(max(s[i] for s in same)) for i in range(length))

    def take_window(self) -> tuple[int, int]:
        """(jobs, misses) since the last call, then restart the window."""
        window = (self.window_jobs, self.window_misses)
        self.window_jobs = self.window_misses = 0
        return window

    def forget_timing(self) -> None:
        """Drop execution-time history (after a variant switch it describes another model)."""
        self._exec_ns.clear()
        self._stage_ns.clear()
