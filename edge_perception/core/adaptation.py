"""RT-mDL model-variant selection: trade accuracy for time, offline and online.

Offline, :func:`choose_variants` picks one variant per task that maximises total accuracy
among the combinations the response-time analysis accepts. Online, :class:`VariantAdapter`
watches each lane's miss ratios per window. Misses above a threshold re-run the selection for
that lane with the costs the lane measures (profiled costs scaled by how much slower the
current variants run there: contention the start-up profile could not see), downgrades only;
where that changes nothing, the lowest-priority task that still has a faster variant is
downgraded one step. A run of calm windows upgrades the highest-priority degraded task
again. Hysteresis: two thresholds, a calm-run length, and a run length that doubles
whenever an upgrade is followed by a downgrade.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

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

    def decide(self, windows: Mapping[str, tuple[int, int]],
               observed_exec_ns: Mapping[str, int] | None = None) -> list[Switch]:
        """Switches for one window: ``windows`` holds each task's (jobs, misses) in it,
        ``observed_exec_ns`` the typical execution time of its current variant (0: none
        yet). An overloaded lane may switch several tasks at once; others one at most."""
        switches: list[Switch] = []
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
                reason = (f'miss ratio above {self.policy.downgrade_above:.0%} '
                          f'({", ".join(overloaded)})')
                down = self._reselect(on_lane, observed_exec_ns or {}, reason)
                if not down:
                    down = [s for s in [self._downgrade(on_lane, reason)] if s is not None]
                state.calm = 0
                if down:
                    if state.last_was_upgrade:  # we upgraded too early: wait longer next time
                        state.needed = min(state.needed * 2, self.policy.max_calm_windows)
                    state.last_was_upgrade = False
                    switches.extend(down)
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

    def _reselect(self, on_lane: list[TaskVariants], observed_exec_ns: Mapping[str, int],
                  reason: str) -> list[Switch]:
        """The lane's most accurate schedulable downgrade under measured costs: each task's
        options scaled by its current variant's measured/profiled time (at least 1; a task
        with no measurement takes the lane's largest), so one window fixes what one-step
        downgrades took a window each for (the executor benchmark's 200-frame runs at 1.2x:
        four windows, most of the run)."""
        current = {t.name: next(o for o in t.options if o.name == self.current[t.name])
                   for t in on_lane}
        slowdown = {name: observed_exec_ns[name] / sum(option.stage_wcets)
                    for name, option in current.items()
                    if observed_exec_ns.get(name, 0) > 0 and sum(option.stage_wcets) > 0}
        if not slowdown:
            return []
        worst = max(slowdown.values())
        scaled = []
        for task in on_lane:
            factor = max(1.0, slowdown.get(task.name, worst))
            names = self._names(task.name)
            cheaper = task.options[names.index(self.current[task.name]):]
            scaled.append(replace(task, options=tuple(
                replace(o, stage_wcets=tuple(int(w * factor) for w in o.stage_wcets))
                for o in cheaper)))
        chosen = choose_variants(scaled).variants
        return [Switch(name, self.current[name], variant, f'{reason}; measured costs '
                       f'x{max(1.0, slowdown.get(name, worst)):.2f}')
                for name, variant in chosen.items() if variant != self.current[name]]

    def _downgrade(self, on_lane: list[TaskVariants], reason: str) -> Switch | None:
        for task in reversed(on_lane):  # lowest priority first
            names = self._names(task.name)
            index = names.index(self.current[task.name])
            if index + 1 < len(names):
                return Switch(task.name, names[index], names[index + 1], reason)
        return None

    def _upgrade(self, on_lane: list[TaskVariants]) -> Switch | None:
        for task in on_lane:  # highest priority first
            names = self._names(task.name)
            index = names.index(self.current[task.name])
            if index > 0:
                return Switch(task.name, names[index], names[index - 1],
                              f'no misses for {self._lanes[task.lane].needed} windows')
        return None
