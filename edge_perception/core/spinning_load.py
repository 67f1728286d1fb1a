"""The spinning thread's own work, as the response-time analysis has to count it.

Before a lane sees a job, the spinning thread took the camera message, decoded it and ran
the first step of every task it feeds (up to the first model request); it also runs the
container's timers (diagnostics, variant adaptation). It shares the GIL with the lanes (and,
in a process per lane, their core), so that work delays every lane of the process. Each
source counts as a periodic load above every task: a camera topic (taking each message) at
the median gap between its stamps, with the spread of their transport as release jitter; a
task's release (decoding the frame, the job's first step) at the task's period; a timer at
its own; each with its longest measured run.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from itertools import pairwise

from edge_perception.core.scheduling import TaskTiming, padded

# Recent runs per source kept for the estimate (as TaskStats keeps jobs).
HISTORY = 500
# A source's first runs are cold (first calls into numpy, first graph queries) and are left
# out of its cost: the diagnostics timer's second run took 14-16 ms of CPU in the executor
# benchmark's containers, the later ones 2-3 ms.
COLD_RUNS = 2
SPINNING_PREFIX = 'spinning thread: '  # the name of a source's timing


@dataclass
class _Source:
    period_ns: int | None  # known (a timer's, a task's); None: learned from the messages
    runs: int = 0
    arrivals: deque[int] = field(default_factory=lambda: deque(maxlen=HISTORY))
    stamps: deque[int] = field(default_factory=lambda: deque(maxlen=HISTORY))
    costs: deque[int] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def copy(self) -> _Source:
        return _Source(self.period_ns, self.runs, deque(self.arrivals), deque(self.stamps),
                       deque(self.costs))

    def timing(self, name: str, lane: str, margin: float) -> TaskTiming | None:
        if not self.costs:
            return None  # only cold runs so far
        # A camera's rate is its stamps' (the spinning thread may take frames in bursts);
        # its jitter how much their transport varies (any clock offset cancels out).
        stamped = len(self.stamps) == len(self.arrivals)
        beat = self.stamps if stamped else self.arrivals
        period = self.period_ns or (_median_gap(beat) if len(beat) >= 3 else None)
        if period is None or period <= 0:
            return None  # no rate known yet, or none at all (a timer of period 0)
        if stamped:
            transport = [a - s for a, s in zip(self.arrivals, self.stamps, strict=True)]
            jitter = max(transport) - min(transport)
        elif self.period_ns is None:
            jitter = max(0, period - min(b - a for a, b in pairwise(beat)))
        else:
            jitter = 0
        return TaskTiming(name, lane, period, period, padded((max(self.costs),), margin),
                          jitter_ns=jitter)


def _median_gap(times: deque[int]) -> int:
    return int(statistics.median(b - a for a, b in pairwise(times)))


class SpinningLoad:
    """What the spinning thread ran, per source; thread-safe."""

    def __init__(self) -> None:
        self._sources: dict[str, _Source] = {}
        self._lock = threading.Lock()
        self._thread: tuple[int, int] | None = None  # (thread ident, its CPU clock id)
        # Every source's timing as of ``_recorded`` runs: one report asks for it once per
        # lane and once for the analysis, and each costs a median over the source's history.
        self._recorded = 0
        self._timings: tuple[int, list[TaskTiming]] = (-1, [])

    def follow_current_thread(self) -> None:
        """Make the calling thread the spinning thread whose CPU time :meth:`cpu_ns` reads
        (a no-op when it already is)."""
        ident = threading.get_ident()
        if self._thread is None or self._thread[0] != ident:
            self._thread = (ident, time.pthread_getcpuclockid(ident))

    def cpu_ns(self) -> int:
        """CPU time the spinning thread has used so far (0 before one is followed, or once
        it exited): lanes take it out of their stage times."""
        if self._thread is None:
            return 0
        try:
            return time.clock_gettime_ns(self._thread[1])
        except OSError:
            return 0

    def record(self, source: str, arrival_ns: int, cost_ns: int, *,
               period_ns: int | None = None, stamp_ns: int | None = None) -> None:
        """One run of ``source`` (a topic's message, a task's release, a timer's callback)
        for something that arrived at ``arrival_ns`` (stamped ``stamp_ns`` by its source),
        which took ``cost_ns`` of CPU; ``period_ns`` where the source's period is known."""
        with self._lock:
            entry = self._sources.setdefault(source, _Source(period_ns))
            entry.runs += 1
            self._recorded += 1
            entry.arrivals.append(arrival_ns)
            if stamp_ns is not None:
                entry.stamps.append(stamp_ns)
            else:
                entry.stamps.clear()  # judged by arrivals from here on
            if entry.runs > COLD_RUNS:
                entry.costs.append(max(cost_ns, 0))

    def interference(self, lanes: list[str], margin: float) -> list[TaskTiming]:
        """Each source as periodic work above every task of each of ``lanes`` (costs padded
        by ``margin`` like the tasks' own); sources without a known rate yet are left out."""
        return [replace(timing, lane=lane, stage_wcets=padded(timing.stage_wcets, margin))
                for lane in lanes for timing in self._unpadded()]

    def _unpadded(self) -> list[TaskTiming]:
        with self._lock:
            recorded, cached = self._timings
            if recorded == self._recorded:
                return cached
            recorded = self._recorded
            sources = {name: source.copy() for name, source in self._sources.items()}
        timings = [timing for name, source in sources.items()
                   if (timing := source.timing(f'{SPINNING_PREFIX}{name}', '', 1.0))
                   is not None]
        with self._lock:
            self._timings = (recorded, timings)
        return timings
