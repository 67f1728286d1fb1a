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

import functools
import itertools
import math
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


# Above this many combinations on one lane the choice is greedy: exhaustive search grows as
# 3^tasks (9 tasks on a lane took 3 s, 11 would take a minute, in the adaptation timer).
EXHAUSTIVE_LIMIT = 2187


def choose_variants(tasks: Sequence[TaskVariants]) -> Selection:
    """The most accurate schedulable combination; if none is, the one with the most
    schedulable tasks, then the least utilisation. Lanes do not interfere in the analysis,
    so each lane is chosen on its own: exhaustively up to EXHAUSTIVE_LIMIT combinations,
    greedily above (see :func:`_greedy`)."""
    if not tasks or any(not task.options for task in tasks):
        raise ValueError('choose_variants needs at least one task with one variant')
    lanes: dict[str, list[TaskVariants]] = {}
    for task in tasks:
        lanes.setdefault(task.lane, []).append(task)
    chosen = [(_exhaustive if math.prod(len(t.options) for t in on_lane) <= EXHAUSTIVE_LIMIT
               else _greedy)(on_lane) for on_lane in lanes.values()]
    return Selection({task: variant for selection in chosen
                      for task, variant in selection.variants.items()},
                     all(selection.schedulable for selection in chosen),
                     sum(selection.total_accuracy for selection in chosen))


def _judge(tasks: Sequence[TaskVariants], combo: Sequence[VariantOption]) -> tuple[int, float]:
    """(schedulable tasks, total accuracy if all are, else -utilisation): higher is better."""
    timings = [TaskTiming(t.name, t.lane, t.period_ns, t.deadline_ns, o.stage_wcets)
               for t, o in zip(tasks, combo, strict=True)]
    bounds = response_times(timings, deadline_monotonic(timings))
    ok = sum(b.schedulable for b in bounds.values())
    if ok == len(tasks):
        return ok, sum(o.accuracy for o in combo)
    return ok, -sum(t.wcet_ns / t.period_ns for t in timings)


def _selection(tasks: Sequence[TaskVariants], combo: Sequence[VariantOption]) -> Selection:
    return Selection({t.name: o.name for t, o in zip(tasks, combo, strict=True)},
                     _judge(tasks, combo)[0] == len(tasks), sum(o.accuracy for o in combo))


def _exhaustive(tasks: Sequence[TaskVariants]) -> Selection:
    best = max(itertools.product(*(task.options for task in tasks)),
               key=lambda combo: _judge(tasks, combo))
    return _selection(tasks, best)


def _greedy(tasks: Sequence[TaskVariants]) -> Selection:
    """Downgrade one step at a time, each time the step that leaves the most tasks
    schedulable (then loses the least accuracy per utilisation saved), until all are or
    nothing is left to downgrade; then upgrade one step at a time while all stay
    schedulable. A cheaper variant never lengthens another task's bound, so this finds a
    schedulable combination whenever one exists; not always the most accurate."""
    index = [0] * len(tasks)

    def combo(at: list[int]) -> list[VariantOption]:
        return [t.options[i] for t, i in zip(tasks, at, strict=True)]

    def stepped(at: list[int], task: int, step: int) -> list[int]:
        return [i + step if n == task else i for n, i in enumerate(at)]

    def merit(at: list[int], n: int) -> tuple[int, float]:
        now, cheaper = tasks[n].options[at[n]], tasks[n].options[at[n] + 1]
        saved = (sum(now.stage_wcets) - sum(cheaper.stage_wcets)) / tasks[n].period_ns
        lost = now.accuracy - cheaper.accuracy
        return _judge(tasks, combo(stepped(at, n, 1)))[0], saved / max(lost, 1e-9)

    def gain(at: list[int], n: int) -> float:
        return tasks[n].options[at[n] - 1].accuracy - tasks[n].options[at[n]].accuracy

    while _judge(tasks, combo(index))[0] < len(tasks):
        steps = [n for n, t in enumerate(tasks) if index[n] + 1 < len(t.options)]
        if not steps:
            break
        index = stepped(index, max(steps, key=functools.partial(merit, index)), 1)
    while _judge(tasks, combo(index))[0] == len(tasks):
        # The affordable upgrade that wins the most accuracy, one at a time.
        upgrades = sorted((n for n in range(len(tasks)) if index[n] > 0),
                          key=functools.partial(gain, index), reverse=True)
        fits = [n for n in upgrades
                if _judge(tasks, combo(stepped(index, n, -1)))[0] == len(tasks)]
        if not fits:
            break
        index = stepped(index, fits[0], -1)
    return _selection(tasks, combo(index))


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
