"""RT-mDL variant selection offline (RTA-constrained) and online (windows, hysteresis)."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest

from edge_perception.core import adaptation
from edge_perception.core.adaptation import (
    AdaptationPolicy,
    TaskVariants,
    VariantAdapter,
    VariantOption,
    choose_variants,
)

MS = 1_000_000


def variants(name: str, period_ms: int, costs_ms: tuple[int, int, int], *,
             lane: str = 'cpu') -> TaskVariants:
    accuracies = (0.95, 0.9, 0.6)
    return TaskVariants(name, lane, period_ms * MS, period_ms * MS, tuple(
        VariantOption(v, acc, (cost * MS,))
        for v, acc, cost in zip(('full', 'half', 'quarter'), accuracies, costs_ms, strict=True)))


def test_offline_keeps_full_accuracy_when_it_fits() -> None:
    selection = choose_variants([variants('lights', 100, (30, 10, 3)),
                                 variants('signs', 200, (50, 20, 5))])
    assert selection.variants == {'lights': 'full', 'signs': 'full'}
    assert selection.schedulable


def test_offline_downgrades_only_as_much_as_needed() -> None:
    # lights full (80 ms) is blocked by any signs stage longer than 20 ms, so full+half
    # (80 + 30 > 100) fails; full+quarter (0.95 + 0.6) fits but half+half (0.9 + 0.9) is
    # the most accurate schedulable choice.
    selection = choose_variants([variants('lights', 100, (80, 20, 5)),
                                 variants('signs', 200, (100, 30, 8))])
    assert selection.schedulable
    assert selection.variants == {'lights': 'half', 'signs': 'half'}


def test_offline_reports_when_nothing_fits() -> None:
    selection = choose_variants([variants('lights', 10, (80, 40, 20))])
    assert not selection.schedulable
    assert selection.variants == {'lights': 'quarter'}


def adapter(**policy: int | float) -> VariantAdapter:
    tasks = {t.name: t for t in (variants('lights', 100, (30, 10, 3)),
                                 variants('signs', 200, (50, 20, 5)),
                                 variants('other_lane', 100, (30, 10, 3), lane='gpu'))}
    return VariantAdapter(tasks=tasks, current=dict.fromkeys(tasks, 'full'),
                          policy=AdaptationPolicy(**policy))  # type: ignore[arg-type]


def test_misses_downgrade_the_lowest_priority_task_of_that_lane() -> None:
    a = adapter()
    (switch,) = a.decide({'lights': (10, 5), 'signs': (5, 0), 'other_lane': (10, 0)})
    assert (switch.task, switch.old, switch.new) == ('signs', 'full', 'half')
    (switch,) = a.decide({'lights': (10, 5), 'signs': (5, 0)})
    assert (switch.task, switch.new) == ('signs', 'quarter')
    (switch,) = a.decide({'lights': (10, 5), 'signs': (5, 0)})
    assert (switch.task, switch.new) == ('lights', 'half')  # signs has nothing faster left
    assert a.current == {'lights': 'half', 'signs': 'quarter', 'other_lane': 'full'}


def test_too_few_jobs_are_no_evidence() -> None:
    assert adapter(min_jobs=5).decide({'lights': (2, 2)}) == []


def test_calm_windows_upgrade_the_highest_priority_degraded_task() -> None:
    a = adapter(calm_windows=2)
    a.current.update(lights='half', signs='half')
    calm = {'lights': (10, 0), 'signs': (5, 0)}
    assert a.decide(calm) == []
    (switch,) = a.decide(calm)
    assert (switch.task, switch.new) == ('lights', 'full')


def test_upgrade_followed_by_misses_doubles_the_calm_run_needed() -> None:
    a = adapter(calm_windows=2)
    a.current['signs'] = 'half'
    calm, bad = {'lights': (10, 0), 'signs': (5, 0)}, {'lights': (10, 5), 'signs': (5, 0)}
    assert a.decide(calm) == []
    assert a.decide(calm)[0].new == 'full'
    assert a.decide(bad)[0].new == 'half'  # back down
    decisions = [a.decide(calm) for _ in range(4)]
    assert [bool(d) for d in decisions] == [False, False, False, True]  # needed 4, not 2


def test_mixed_windows_neither_upgrade_nor_downgrade() -> None:
    a = adapter(calm_windows=1)
    a.current['signs'] = 'half'
    assert a.decide({'lights': (10, 0), 'signs': (20, 1)}) == []  # 5%: between thresholds


def lane_of_four() -> VariantAdapter:
    # Four 20 ms-deadline tasks of 4/2/1 ms: all full (16 ms) fits as profiled.
    tasks = {t.name: t for t in (variants(f'task_{i}', 20, (4, 2, 1)) for i in range(4))}
    return VariantAdapter(tasks=tasks, current=dict.fromkeys(tasks, 'full'))


def test_measured_slowdown_reselects_the_whole_lane_in_one_window() -> None:
    a = lane_of_four()
    misses = {f'task_{i}': (10, 0 if i < 2 else 8) for i in range(4)}
    # Everything runs 2x slower than profiled (8 ms): full everywhere is 32 ms of 20.
    switches = a.decide(misses, {f'task_{i}': 8 * MS for i in range(4)})
    assert len(switches) >= 2
    assert all(s.old == 'full' and s.new in ('half', 'quarter') for s in switches)
    assert 'measured costs x2.00' in switches[0].reason
    chosen = [variants('t', 20, (4, 2, 1)).options[['full', 'half', 'quarter'].index(
        a.current[f'task_{i}'])].stage_wcets[0] * 2 for i in range(4)]
    assert sum(chosen) <= 20 * MS  # schedulable under the measured costs


def test_a_task_without_measurements_takes_the_lanes_worst_slowdown() -> None:
    a = lane_of_four()
    misses = {f'task_{i}': (10, 8) for i in range(4)}
    switches = a.decide(misses, {'task_0': 12 * MS, 'task_1': 0, 'task_2': 0, 'task_3': 0})
    assert {s.task for s in switches} == {f'task_{i}' for i in range(4)}  # x3 for all


def test_no_slowdown_measured_falls_back_to_one_step() -> None:
    a = lane_of_four()
    (switch,) = a.decide({'task_3': (10, 8)}, {f'task_{i}': 4 * MS for i in range(4)})
    assert (switch.task, switch.new) == ('task_3', 'half')


def test_reselection_never_upgrades() -> None:
    a = lane_of_four()
    a.current.update(task_0='quarter')
    switches = a.decide({'task_3': (10, 8)}, {'task_0': 2 * MS, 'task_1': 8 * MS,
                                              'task_2': 8 * MS, 'task_3': 8 * MS})
    assert switches
    assert all(s.task != 'task_0' for s in switches)
    assert a.current['task_0'] == 'quarter'


def brute_force(tasks: list[TaskVariants]) -> tuple[bool, float]:
    """Over every combination of the whole set: (any schedulable, best accuracy of those)."""
    from edge_perception.core.scheduling import TaskTiming, response_times

    best = None
    for combo in itertools.product(*(t.options for t in tasks)):
        timings = [TaskTiming(t.name, t.lane, t.period_ns, t.deadline_ns, o.stage_wcets)
                   for t, o in zip(tasks, combo, strict=True)]
        if all(b.schedulable for b in response_times(timings).values()):
            accuracy = sum(o.accuracy for o in combo)
            best = accuracy if best is None else max(best, accuracy)
    return best is not None, -1.0 if best is None else best


def random_lanes(seed: int, tasks: int) -> list[TaskVariants]:
    rng = random.Random(seed)
    return [variants(f't{i}', rng.choice((20, 40, 50)),
                     (rng.randint(4, 14), rng.randint(2, 4), 1), lane=rng.choice(('cpu', 'gpu')))
            for i in range(tasks)]


def test_lanes_chosen_apart_match_the_whole_set_searched_at_once() -> None:
    for seed in range(30):
        tasks = random_lanes(seed, 6)
        selection = choose_variants(tasks)
        exists, best = brute_force(tasks)
        assert selection.schedulable == exists, seed
        if exists:
            assert selection.total_accuracy == pytest.approx(best), seed


def test_a_lane_too_big_to_search_is_chosen_greedily_and_schedulably() -> None:
    # 14 tasks on one lane: 3^14 combinations (an exhaustive search would take hours).
    tasks = [variants(f't{i}', 100, (9, 5, 2)) for i in range(14)]
    selection = choose_variants(tasks)
    assert selection.schedulable  # all quarter fits (28 of 100 ms); full does not (126)
    chosen = [('full', 'half', 'quarter').index(selection.variants[f't{i}'])
              for i in range(14)]
    assert sum((9, 5, 2)[c] for c in chosen) <= 100
    assert any(c < 2 for c in chosen)  # it upgraded what fits, not all quarter
    # Nothing schedulable: the cheapest everywhere, reported as such.
    overloaded = [variants(f't{i}', 10, (9, 5, 2)) for i in range(14)]
    worst = choose_variants(overloaded)
    assert not worst.schedulable
    assert set(worst.variants.values()) == {'quarter'}


def test_greedy_finds_a_schedulable_choice_whenever_one_exists() -> None:
    for seed in range(40):
        tasks = [dataclasses.replace(t, lane='cpu') for t in random_lanes(seed, 5)]
        greedy = adaptation._greedy(tasks)
        exists, best = brute_force(tasks)
        assert greedy.schedulable == exists, seed
        assert greedy.total_accuracy <= best + 1e-9 or not exists
