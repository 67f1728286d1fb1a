"""Fixed-priority scheduling theory: deadline-monotonic priorities and response-time analysis.

Lanes run jobs non-preemptively between stages (limited preemption): a higher-priority job
waits at most for the running stage of a lower-priority one. The analysis below is the
limited-preemptive form of Davis, Burns, Bril & Lukkien (Real-Time Systems 2007), which
examines every job of the level-i busy period, not only the first (the first job is not
always the worst one without full preemption).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class TaskTiming:
    """What the analysis needs of one task; all times in nanoseconds.

    ``stage_wcets`` are the worst-case times of the task's non-preemptive stages in order;
    their sum is the task's WCET and the last one runs without preemption at the end.
    ``jitter_ns`` is how long after its nominal arrival a job can be released (a frame's
    transport from the camera); the response counts from the arrival, and jobs released
    late can bunch up and interfere more.
    """

    name: str
    lane: str
    period_ns: int
    deadline_ns: int
    stage_wcets: tuple[int, ...]
    jitter_ns: int = 0

    @property
    def wcet_ns(self) -> int:
        return sum(self.stage_wcets)

    @property
    def longest_stage_ns(self) -> int:
        return max(self.stage_wcets)


def padded(stage_ns: Sequence[int], margin: float) -> tuple[int, ...]:
    """Measured stage times scaled by a safety ``margin`` (>= 1) for use as WCETs.

    Measured maxima are samples, not bounds: on a shared machine a later job can take longer
    than any measured one, and an analysis fed the raw maxima then admits tasks that miss.
    """
    return tuple(math.ceil(ns * margin) for ns in stage_ns)


@dataclass(frozen=True)
class ResponseBound:
    """A task's worst-case response and what it is made of: its own WCET, blocking by one
    lower-priority stage, its release jitter, and the rest (higher-priority tasks, the
    spinning thread, earlier jobs of its own busy period) as interference."""

    task: str
    response_ns: float  # math.inf when the busy period does not end (utilisation >= 1)
    blocking_ns: int
    schedulable: bool
    wcet_ns: int = 0
    jitter_ns: int = 0

    @property
    def interference_ns(self) -> float:
        return self.response_ns - self.wcet_ns - self.blocking_ns - self.jitter_ns


def deadline_monotonic(tasks: Iterable[TaskTiming]) -> dict[str, int]:
    """Priority per task, 0 = highest: shorter relative deadline first.

    Ties break by shorter period, then by name, so the order never depends on config order.
    """
    ordered = sorted(tasks, key=lambda t: (t.deadline_ns, t.period_ns, t.name))
    return {task.name: rank for rank, task in enumerate(ordered)}


def response_times(tasks: Sequence[TaskTiming], priorities: Mapping[str, int] | None = None,
                   *, interference: Sequence[TaskTiming] = ()) -> dict[str, ResponseBound]:
    """Worst-case response time of every task under limited-preemptive fixed priorities.

    Tasks interfere only with tasks on the same lane. ``priorities`` defaults to
    deadline-monotonic. ``interference`` is work above every task of its lane that is not a
    task itself (the spinning thread's: :mod:`~edge_perception.core.spinning_load`): it
    delays the lane's jobs and is never blocked by them.
    """
    priorities = dict(priorities or deadline_monotonic(tasks))
    bounds = {}
    for task in tasks:
        same_lane = [t for t in tasks if t.lane == task.lane and t.name != task.name]
        higher = [t for t in same_lane if priorities[t.name] < priorities[task.name]]
        higher += [t for t in interference if t.lane == task.lane]
        lower = [t for t in same_lane if priorities[t.name] > priorities[task.name]]
        bounds[task.name] = _bound(task, higher, lower)
    return bounds


def _arrived(t: TaskTiming, window: float) -> int:
    """Most jobs of ``t`` released within ``window`` (jitter lets them bunch up)."""
    return math.ceil((window + t.jitter_ns) / t.period_ns)


def _bound(task: TaskTiming, higher: list[TaskTiming], lower: list[TaskTiming]) -> ResponseBound:
    # A lower-priority stage that just started blocks us once (minus one tick: it started
    # strictly before our release).
    blocking = max((t.longest_stage_ns - 1 for t in lower), default=0)
    blocking = max(blocking, 0)
    # Exact: a float sum of 0.45 + 0.2 + 0.1 + 0.25 came out just under 1, and the busy
    # period below, which only ends when utilisation < 1, grew forever.
    utilisation = sum(Fraction(t.wcet_ns, t.period_ns) for t in (task, *higher))
    if utilisation >= 1:
        return ResponseBound(task.name, math.inf, blocking, False, task.wcet_ns, task.jitter_ns)
    # Length of the level-i busy period: how many jobs of this task it can contain.
    busy = float(blocking + task.wcet_ns)
    while True:
        grown = blocking + sum(_arrived(t, busy) * t.wcet_ns for t in (task, *higher))
        if grown <= busy:
            break
        busy = grown
    jobs = max(1, _arrived(task, busy))
    final = task.stage_wcets[-1]
    worst = 0.0
    for q in range(jobs):
        # Start time of job q's final (non-preemptive) stage.
        start = float(blocking + (q + 1) * task.wcet_ns - final)
        while True:
            grown = (blocking + (q + 1) * task.wcet_ns - final
                     + sum((math.floor((start + t.jitter_ns) / t.period_ns) + 1) * t.wcet_ns
                           for t in higher))
            if grown <= start:
                break
            start = grown
        # Job q arrived (q * period - jitter) before the busy period began at its release.
        worst = max(worst, start + final - q * task.period_ns + task.jitter_ns)
    return ResponseBound(task.name, worst, blocking, worst <= task.deadline_ns, task.wcet_ns,
                         task.jitter_ns)
