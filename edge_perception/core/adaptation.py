"""RT-mDL model-variant selection: trade accuracy for time, offline and online.

Offline, :func:`choose_variants` picks one variant per task that maximises total accuracy
among the combinations the response-time analysis accepts. Online, :class:`VariantAdapter`
watches each lane's miss ratios per window: misses above a threshold downgrade the
lowest-priority task of that lane that still has a faster variant; a run of calm windows
upgrades the highest-priority degraded task again. Hysteresis: two thresholds, a calm-run
length, and a run length that doubles whenever an upgrade is followed by a downgrade.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from edge_perception.core.scheduling import TaskTiming, deadline_monotonic, response_times


@dataclass(frozen=True)
class VariantOption:
    """One variant of one task: its accuracy and its measured stage WCETs."""

    name: str
    accuracy: float
    stage_wcets: tuple[int, ...]


@dataclass(frozen=True)
class TaskVariants:
    """A task's timing and its variants, most accurate first."""

    name: str
    lane: str
    period_ns: int
    deadline_ns: int
    options: tuple[VariantOption, ...]


@dataclass(frozen=True)
class Selection:
    variants: dict[str, str]
    schedulable: bool
    total_accuracy: float


def choose_variants(tasks: Sequence[TaskVariants]) -> Selection:
    """The most accurate schedulable combination; if none is, the one with the most
    schedulable tasks, then the least utilisation. Exhaustive: few tasks x 3 variants."""
    best: tuple[tuple[int, float], Selection] | None = None
    for combo in itertools.product(*(task.options for task in tasks)):
        timings = [TaskTiming(t.name, t.lane, t.period_ns, t.deadline_ns, o.stage_wcets)
                   for t, o in zip(tasks, combo, strict=True)]
        bounds = response_times(timings, deadline_monotonic(timings))
        ok = sum(b.schedulable for b in bounds.values())
        accuracy = sum(o.accuracy for o in combo)
        utilisation = sum(t.wcet_ns / t.period_ns for t in timings)
        # All schedulable: most accurate wins. Otherwise: most slack (least utilisation).
        score = (ok, accuracy if ok == len(tasks) else -utilisation)
        if best is None or score > best[0]:
            best = (score, Selection({t.name: o.name for t, o in zip(tasks, combo, strict=True)},
                                     ok == len(tasks), accuracy))
    if best is None:
        raise ValueError('choose_variants needs at least one task with one variant')
    return best[1]


@dataclass(frozen=True)
class AdaptationPolicy:
    downgrade_above: float = 0.10  # window miss ratio that triggers a downgrade
    upgrade_below: float = 0.01  # every task of the lane at most this for a calm window
    calm_windows: int = 3  # calm windows in a row before an upgrade
    max_calm_windows: int = 48
    min_jobs: int = 3  # fewer jobs in a window: no evidence either way


@dataclass(frozen=True)
class Switch:
    task: str
    old: str
    new: str
    reason: str


@dataclass
class _LaneState:
    calm: int = 0
    needed: int = 0
    last_was_upgrade: bool = False


@dataclass
class VariantAdapter:
    """Decides variant switches from per-window (jobs, misses) counts."""

    tasks: Mapping[str, TaskVariants]
    current: dict[str, str]
    policy: AdaptationPolicy = field(default_factory=AdaptationPolicy)
    _lanes: dict[str, _LaneState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        timings = [TaskTiming(t.name, t.lane, t.period_ns, t.deadline_ns, (1,))
                   for t in self.tasks.values()]
        self._priority = deadline_monotonic(timings)
        for task in self.tasks.values():
            self._lanes.setdefault(task.lane, _LaneState(needed=self.policy.calm_windows))

    def _names(self, task: str) -> list[str]:
        return [o.name for o in self.tasks[task].options]

    def decide(self, windows: Mapping[str, tuple[int, int]]) -> list[Switch]:
        """At most one switch per lane per window."""
        switches = []
        for lane, state in self._lanes.items():
            on_lane = sorted((t for t in self.tasks.values() if t.lane == lane),
                             key=lambda t: self._priority[t.name])
            ratios = {t.name: windows.get(t.name, (0, 0)) for t in on_lane}
            overloaded = [name for name, (jobs, misses) in ratios.items()
                          if jobs >= self.policy.min_jobs
                          and misses / jobs > self.policy.downgrade_above]
            calm = all(jobs == 0 or misses / jobs <= self.policy.upgrade_below
                       for jobs, misses in ratios.values())
            if overloaded:
                switch = self._downgrade(on_lane, overloaded)
                state.calm = 0
                if switch is not None:
                    if state.last_was_upgrade:  # we upgraded too early: wait longer next time
                        state.needed = min(state.needed * 2, self.policy.max_calm_windows)
                    state.last_was_upgrade = False
                    switches.append(switch)
            elif calm:
                state.calm += 1
                if state.calm >= state.needed:
                    switch = self._upgrade(on_lane)
                    state.calm = 0
                    if switch is not None:
                        state.last_was_upgrade = True
                        switches.append(switch)
            else:
                state.calm = 0
        for switch in switches:
            self.current[switch.task] = switch.new
        return switches

    def _downgrade(self, on_lane: list[TaskVariants], overloaded: list[str]) -> Switch | None:
        for task in reversed(on_lane):  # lowest priority first
            names = self._names(task.name)
            index = names.index(self.current[task.name])
            if index + 1 < len(names):
                return Switch(task.name, names[index], names[index + 1],
                              f'miss ratio above {self.policy.downgrade_above:.0%} '
                              f'({", ".join(overloaded)})')
        return None

    def _upgrade(self, on_lane: list[TaskVariants]) -> Switch | None:
        for task in on_lane:  # highest priority first
            names = self._names(task.name)
            index = names.index(self.current[task.name])
            if index > 0:
                return Switch(task.name, names[index], names[index - 1],
                              f'no misses for {self._lanes[task.lane].needed} windows')
        return None
