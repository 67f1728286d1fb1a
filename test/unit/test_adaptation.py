"""RT-mDL variant selection offline (RTA-constrained) and online (windows, hysteresis)."""

from __future__ import annotations

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
