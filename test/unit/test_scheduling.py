"""Deadline-monotonic priorities and limited-preemptive response-time analysis."""

from __future__ import annotations

import math
import random

from edge_perception.core.scheduling import (
    TaskTiming,
    deadline_monotonic,
    padded,
    response_times,
)

MS = 1_000_000


def task(name: str, period: float, deadline: float, *stages: float,
         lane: str = 'cpu') -> TaskTiming:
    return TaskTiming(name, lane, round(period * MS), round(deadline * MS),
                      tuple(round(s * MS) for s in stages))


def test_shorter_deadline_gets_higher_priority_with_deterministic_ties() -> None:
    tasks = [task('signs', 200, 150, 10), task('lights', 100, 100, 10),
             task('b_tie', 100, 100, 10), task('a_tie', 100, 100, 10)]
    assert deadline_monotonic(tasks) == {'a_tie': 0, 'b_tie': 1, 'lights': 2, 'signs': 3}
    assert deadline_monotonic(reversed(tasks)) == deadline_monotonic(tasks)


def test_single_task_response_is_its_wcet() -> None:
    (bound,) = response_times([task('a', 100, 100, 30)]).values()
    assert bound.response_ns == 30 * MS
    assert bound.schedulable


def test_blocking_by_a_lower_priority_stage_and_interference() -> None:
    # hi: C=10 in one stage, T=D=50; lo: stages 40+40, T=D=200.
    bounds = response_times([task('hi', 50, 50, 10), task('lo', 200, 200, 40, 40)])
    hi = bounds['hi']
    assert hi.blocking_ns == 40 * MS - 1  # one lower-priority stage, not the whole job
    assert hi.response_ns == 10 * MS + 40 * MS - 1
    assert hi.schedulable
    # lo's final stage starts at w = 40 + 10 * (floor(w / 50) + 1): 50 -> 60 -> 60 (hi ran
    # at 0 and 50); it ends at R = 60 + 40 = 100.
    assert bounds['lo'].response_ns == 100 * MS
    assert bounds['lo'].schedulable


def test_non_preemptive_blocking_can_break_a_short_deadline() -> None:
    bounds = response_times([task('hi', 50, 30, 10), task('lo', 200, 200, 60)])
    assert not bounds['hi'].schedulable  # 10 + 60 blocking > 30
    staged = response_times([task('hi', 50, 30, 10), task('lo', 200, 200, 15, 15, 15, 15)])
    assert staged['hi'].schedulable  # limited preemption: blocked by one 15 ms stage


def test_tasks_on_other_lanes_do_not_interfere() -> None:
    bounds = response_times([task('a', 50, 50, 40, lane='cpu'), task('b', 50, 50, 40, lane='gpu')])
    assert all(b.response_ns == 40 * MS for b in bounds.values())


def test_overload_is_unschedulable_with_infinite_response() -> None:
    bounds = response_times([task('a', 50, 50, 30), task('b', 60, 60, 30)])
    assert math.isinf(bounds['b'].response_ns)
    assert not bounds['b'].schedulable


def test_exactly_full_utilisation_is_unschedulable_not_a_hang() -> None:
    # 9/20 + 4/20 + 2/20 + 10/40 = 1 exactly; as floats the sum came out just under 1 and
    # the busy-period iteration never ended.
    tasks = [task('a', 20, 20, 9), task('b', 20, 20, 4), task('c', 20, 20, 2),
             task('d', 40, 40, 10)]
    bounds = response_times(tasks)
    assert math.isinf(bounds['d'].response_ns)
    assert not bounds['d'].schedulable
    assert bounds['a'].schedulable  # 9 ms + blocked by d's 10 ms stage


def simulate(tasks: list[TaskTiming], name: str) -> list[int]:
    """Exact response times of ``name``'s jobs in its critical instant: it and every
    higher-priority task release at 0 and the longest lower-priority stage started 1 ns
    earlier; a task with jitter J released its first job J late and the next ones as early
    as they can be (k * period - J), and the response counts from the arrival.
    Non-preemptive stages, fixed priorities; runs until the busy period ends."""
    priority = deadline_monotonic(tasks)
    by_name = {t.name: t for t in tasks}
    lower = [t for t in tasks if priority[t.name] > priority[name]]
    competing = [t.name for t in tasks if priority[t.name] <= priority[name]]
    now = max((t.longest_stage_ns for t in lower), default=1) - 1
    released = dict.fromkeys(competing, 0)
    jitter = by_name[name].jitter_ns

    def release_time(t: TaskTiming, k: int) -> int:
        return 0 if k == 0 else max(0, k * t.period_ns - t.jitter_ns)
    pending: list[tuple[int, int, int, str]] = []  # (priority, release, stage, task)
    responses = []
    while True:
        for task_name in competing:
            t = by_name[task_name]
            while release_time(t, released[task_name]) <= now:
                k = released[task_name]
                pending.append((priority[task_name], k, 0, task_name))
                released[task_name] += 1
        if not pending:
            return responses  # the level-i busy period is over
        pending.sort()
        prio, k, stage, task_name = pending.pop(0)
        now += by_name[task_name].stage_wcets[stage]
        if stage + 1 < len(by_name[task_name].stage_wcets):
            pending.append((prio, k, stage + 1, task_name))
        elif task_name == name:
            responses.append(now - (k * by_name[name].period_ns - jitter))


def test_analysis_matches_simulation_of_the_critical_instant() -> None:
    """On random task sets the bound equals the exact simulated worst case, including sets
    where a later job of the busy period is worse than the first one."""
    rng = random.Random(3)
    checked = later_job_worse = 0
    for _ in range(200):
        tasks = [task(f't{i}', rng.choice([20, 25, 30, 40, 50, 70, 100]), 1e9,
                      *[rng.randint(1, 12) for _ in range(rng.randint(1, 3))])
                 for i in range(rng.randint(2, 4))]
        tasks = [TaskTiming(t.name, t.lane, t.period_ns, t.period_ns, t.stage_wcets)
                 for t in tasks]
        for name, bound in response_times(tasks).items():
            if math.isinf(bound.response_ns):
                continue
            responses = simulate(tasks, name)
            assert bound.response_ns == max(responses), (tasks, name)
            later_job_worse += int(max(responses) > responses[0])
            checked += 1
    assert checked > 300
    assert later_job_worse > 0


def test_release_jitter_bounds_simulation_and_adds_to_the_response() -> None:
    """A late-released task answers for its transport too, and jittery interferers can
    bunch: the bound covers the simulated worst case of random sets with jitter."""
    (alone,) = response_times([TaskTiming('a', 'cpu', 100 * MS, 100 * MS, (30 * MS,),
                                          jitter_ns=5 * MS)]).values()
    assert alone.response_ns == 35 * MS
    # hi (T=50, C=10, J=20) runs at 0 and again at 50 - 20 = 30, before lo's last stage
    # can start (at 20 + 10): lo ends at 50 instead of 40.
    hi = TaskTiming('hi', 'cpu', 50 * MS, 50 * MS, (10 * MS,), jitter_ns=20 * MS)
    lo = task('lo', 200, 200, 10, 10, 10)
    assert response_times([hi, lo])['lo'].response_ns == 50 * MS
    steady = TaskTiming('hi', 'cpu', 50 * MS, 50 * MS, (10 * MS,))
    assert response_times([steady, lo])['lo'].response_ns == 40 * MS
    rng = random.Random(5)
    checked = tight = 0
    for _ in range(200):
        tasks = []
        for i in range(rng.randint(2, 4)):
            period = rng.choice([20, 25, 30, 40, 50, 70, 100])
            tasks.append(TaskTiming(f't{i}', 'cpu', period * MS, period * MS,
                                    tuple(rng.randint(1, 12) * MS
                                          for _ in range(rng.randint(1, 3))),
                                    jitter_ns=rng.randint(0, period // 2) * MS))
        for name, bound in response_times(tasks).items():
            if math.isinf(bound.response_ns):
                continue
            worst = max(simulate(tasks, name))
            assert bound.response_ns >= worst, (tasks, name)
            tight += int(bound.response_ns == worst)
            checked += 1
    assert checked > 200
    assert tight > checked // 2


def test_interference_delays_every_task_of_its_lane_and_blocks_nothing() -> None:
    spinning = TaskTiming('spinning thread', 'cpu', 50 * MS, 50 * MS, (5 * MS,))
    tasks = [task('hi', 100, 100, 10), task('lo', 200, 200, 20), task('other', 100, 100, 10,
                                                                     lane='gpu')]
    plain = response_times(tasks)
    loaded = response_times(tasks, interference=[spinning])
    assert set(loaded) == {'hi', 'lo', 'other'}  # the interference is no task of its own
    assert loaded['hi'].response_ns == plain['hi'].response_ns + 5 * MS
    assert loaded['lo'].response_ns == plain['lo'].response_ns + 5 * MS
    assert loaded['other'].response_ns == plain['other'].response_ns  # another lane
    assert loaded['hi'].blocking_ns == plain['hi'].blocking_ns


def test_a_bound_names_its_terms() -> None:
    """hi (8 + 2 ms, released up to 3 ms late) waits one 40 ms stage of lo and one 5 ms run
    of the spinning thread: 10 + 40 + 5 + 3. What /diagnostics shows a user who asks why."""
    spinning = TaskTiming('spinning thread', 'cpu', 100 * MS, 100 * MS, (5 * MS,))
    hi = TaskTiming('hi', 'cpu', 100 * MS, 60 * MS, (8 * MS, 2 * MS), jitter_ns=3 * MS)
    bound = response_times([hi, task('lo', 200, 200, 40, 40)], interference=[spinning])['hi']
    assert (bound.wcet_ns, bound.blocking_ns, bound.jitter_ns) == (10 * MS, 40 * MS - 1, 3 * MS)
    assert bound.interference_ns == 5 * MS
    assert bound.response_ns == 58 * MS - 1
    assert bound.schedulable


def test_padding_scales_every_stage_and_rounds_up() -> None:
    assert padded((10, 7, 1), 1.3) == (13, 10, 2)
    assert padded((10, 7), 1.0) == (10, 7)
