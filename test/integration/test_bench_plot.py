"""The executor benchmark's figure and report are drawn from its rows (no executors run here)."""

from __future__ import annotations

import dataclasses
import math
import time
from functools import partial
from pathlib import Path

from edge_perception.bench.executor_comparison import (
    OURS,
    ROWS,
    TaskRow,
    Workload,
    admitted_summary,
    format_report,
    plot,
)
from edge_perception.bench.executor_sweep import LoadRun, format_sweep, plot_sweep
from edge_perception.bench.f1tenth_rates import RateRun, format_rates, plot_rates, sustained_rates
from edge_perception.bench.model_latency import (
    LatencyRow,
    _alternating,
    _enough_repeats,
    format_rows,
)
from edge_perception.core.config import load_config


def rows_of(misses: int = 0) -> list[TaskRow]:
    """Every row of the benchmark: row ``index`` misses ``index + misses`` of 10 frames."""
    return [TaskRow(executor=name, task=task, lane='cpu', deadline_ms=80.0, frames=10, due=10,
                    misses=min(10, index + misses), dropped=1, p50_ms=20.0, p99_ms=60.0 + index,
                    max_ms=70.0,
                    schedulable=True if index == 0 else None,
                    rta_ms=45.0 if index == 0 else None,
                    executor_misses=(0, 7, 1) if index == 0 else None,
                    variant='half' if index == 1 else 'full', recall=0.9 - index / 10,
                    engine='tvm' if index == 0 else '-',
                    response_ms=tuple(10.0 + 5 * i + 30 * index for i in range(10)))
            for index, name in enumerate(ROWS) for task in ('traffic_light', 'sign_0')]


def test_plot_writes_a_png(repo_root: Path, tmp_path: Path) -> None:
    rows = rows_of()
    workload = Workload(load_config(repo_root / 'config' / 'f1tenth.yaml'), 12.5,
                        {'cpu': 1.3, 'gpu': 1.5}, tmp_path / 'bag', 'traffic_light')
    out = tmp_path / 'figure.png'
    plot(workload, rows, out)
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert out.stat().st_size > 10_000
    report = format_report(workload, rows).splitlines()
    ours = [line for line in report if line.startswith('deadline (ours)')]
    # RTA verdict and bound; late/dropped/skipped inside
    assert ours[0].split()[-6:] == ['ok', '45.0', '0/7/1', 'full', '0.900', 'tvm']
    # dropped, p50, p99, max, jitter (the standard deviation of 10, 15, ..., 55 ms)
    assert ours[0].split()[-11:-6] == ['1', '20.0', '60.0', '70.0', '14.4']
    adaptive = [line for line in report if line.startswith('deadline+variants (ours)')]
    assert adaptive[0].split()[-3:] == ['half', '0.800', '-']
    assert 'overall miss ratio deadline+variants (ours) 0.100, mean recall 0.800' in [
        ' '.join(line.split()) for line in report]
    assert ('tasks the analysis admits (deadline (ours)): traffic_light, sign_0; their misses: '
            '14 inside the executor (late + dropped), 0 end to end, of 20 task periods (target 0)'
            ) in report
    # The per-lane stock rows are baselines too: the best of them here.
    assert ('ours vs the best stock baseline (stock Single per lane, depth 1): 100.0% fewer'
            in report[-2])


def test_where_the_analysis_admits_nothing_the_nearest_task_s_bound_is_explained() -> None:
    refused = [dataclasses.replace(row, schedulable=False, rta_ms=rta, rta_terms_ms=terms)
               for row, rta, terms in zip(
                   [r for r in rows_of() if r.executor == OURS],
                   (96.0, math.inf), ((40.0, 30.0, 16.0, 10.0), (60.0, 0.0, math.inf, 0.0)),
                   strict=True)]
    assert admitted_summary(refused, OURS) == (
        'tasks the analysis admits (deadline (ours)): none; nearest, traffic_light: bound '
        '96.0 ms = WCET 40.0 + blocking 30.0 + interference 16.0 + release jitter 10.0 > '
        'deadline 80.0 ms')
    unbounded = [dataclasses.replace(row, rta_ms=math.inf) for row in refused]
    assert admitted_summary(unbounded, OURS) == 'tasks the analysis admits (deadline (ours)): none'


def test_the_sweep_reports_and_plots_every_row_by_load(repo_root: Path,
                                                       tmp_path: Path) -> None:
    workload = Workload(load_config(repo_root / 'config' / 'f1tenth.yaml'), 12.5,
                        {'cpu': 1.3, 'gpu': 1.5}, tmp_path / 'bag', 'traffic_light')
    runs = [LoadRun(load, run, workload, rows_of(misses=0 if load < 1 else 2 + run))
            for load in (0.8, 1.2) for run in range(3)]
    out = tmp_path / 'sweep.png'
    plot_sweep(runs, out)
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    report = [' '.join(line.split()) for line in format_sweep(runs).splitlines()]
    for name in ROWS:
        assert sum(line.startswith(f'0.8 {name} ') for line in report) == 1, name
    # At 1.2x ours misses 2, 3, 4 of 10 a task: the median and the spread over the runs.
    assert '1.2 deadline (ours) 0.300 [0.200-0.400] 0.300 [0.200-0.400] 60.0 0.900' in report
    assert ('1.2x: deadline (ours) vs the best stock row (stock Single per lane, depth 1): '
            '40.0% fewer misses (target >= 40%); urgent task 0.300 vs 0.500 (target <= a '
            'tenth)') in report
    assert sum(line.startswith('0.8x run') for line in report) == 3


def test_model_latency_rows_name_the_database_and_the_ratio() -> None:
    rows = [LatencyRow('detector', 'full', 1, 1, 'znver5', 10.0, 11.0, 200.0, 210.0, 5.0, 6.0),
            LatencyRow('sign_classifier', 'quarter', 1, 1, '', 0.2, 0.3, 0.2, 0.3, 0.1, 0.1),
            LatencyRow('detector', 'half', 4, 1, 'sm90', 1.0, 1.2, 4.0, 4.1, 8.0, 9.0,
                       device='cuda', ort_provider='cpu')]
    lines = format_rows(rows).splitlines()
    assert lines[2].split()[4:6] == ['cpu', 'znver5']
    assert lines[2].split()[-2:] == ['2.00x', '40.0x']
    assert lines[3].split()[5] == 'no'
    # A GPU row names where TVM ran, the database's GPU and onnxruntime's provider.
    cuda = lines[4].split()
    assert cuda[4:6] == ['cuda', 'sm90']
    assert cuda[12] == 'cpu'
    assert cuda[-2:] == ['0.12x', '0.5x']


def test_compared_runtimes_take_every_place_in_turn() -> None:
    """Neither runtime always runs right after the other: after one warm-up call each, the
    order alternates which goes first."""
    order: list[str] = []
    seconds = _alternating((partial(order.append, 'tvm'), partial(order.append, 'ort')), 4)
    assert [len(runner) for runner in seconds] == [4, 4]
    assert order == ['tvm', 'ort'] + ['tvm', 'ort', 'ort', 'tvm'] * 2


def test_fast_models_get_more_turns_up_to_a_cap() -> None:
    """A no-op fills half a second only at the cap (100x the asked repeats); a 10 ms call
    gets the asked repeats, never fewer."""
    assert _enough_repeats((lambda: None,), 5) == 500
    assert _enough_repeats((partial(time.sleep, 0.01),), 5, seconds=0.05) == 5


def test_the_sustained_rate_is_the_last_before_the_urgent_task_misses(tmp_path: Path) -> None:
    def runs_with(urgent_misses: dict[float, int]) -> list[RateRun]:
        return [RateRun(rate, [dataclasses.replace(row, misses=urgent_misses[rate])
                               if row.task == 'traffic_light' else row for row in rows_of()])
                for rate in urgent_misses]

    # 10 frames a row: 0 misses holds, 1 (10 %) does not; a later recovery does not count.
    held = sustained_rates(runs_with({15.0: 0, 30.0: 0, 60.0: 1, 90.0: 0}))
    assert held['deadline (ours)'] == 30.0
    assert math.isnan(sustained_rates(runs_with({15.0: 1, 30.0: 0}))['deadline (ours)'])
    runs = runs_with({30.0: 0, 90.0: 3})
    table = format_rates(runs).splitlines()
    assert table[2].split()[-1] == '30Hz'
    assert format_rates(runs_with({30.0: 0, 90.0: 0})).splitlines()[2].split()[-1] == '>=90Hz'
    assert format_rates(runs_with({30.0: 2, 90.0: 0})).splitlines()[2].split()[-1] == 'none'
    out = tmp_path / 'rates.png'
    plot_rates(runs, out)
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_frames_the_camera_could_not_send_end_the_sustained_rate(tmp_path: Path) -> None:
    """A reader too slow for the stream makes DDS refuse frames: no misses among the frames
    that got through, but the rate is not held, and the table says why."""
    def run(rate: float, unsent: int, rows: list[TaskRow] | None = None) -> RateRun:
        return RateRun(rate, [dataclasses.replace(row, misses=0, unsent=unsent)
                              for row in (rows or rows_of())])

    ours = [row for row in rows_of() if row.executor == 'deadline (ours)']
    runs = [run(30.0, 0), run(60.0, 5), run(120.0, 0, ours)]
    held = sustained_rates(runs)
    assert held['deadline (ours)'] == 30.0
    lines = format_rates(runs).splitlines()
    assert 'unsent 33%' in lines[2]
    # A row that stopped at a lower rate is not tried at the higher ones: shown as '-'.
    assert lines[3].split()[-2] == '-'
    assert runs[1].held('deadline (ours)') is False
    assert runs[2].held('stock Single per lane, depth 1') is False
    plot_rates(runs, tmp_path / 'rates.png')
    assert (tmp_path / 'rates.png').stat().st_size > 0
