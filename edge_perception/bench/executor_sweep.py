"""The executor benchmark over loads: every row of bench.executor_comparison at each load,
several runs each (median and spread), and what ours gains where it matters.

A load is the busier lane's measured cost over the camera period (1.0: exactly full), from
profiled medians. At every load <= 1.0 the tasks the analysis admits should miss nothing
(where it admits none, the report names the nearest one's bound and its terms); above,
ours should miss less than the best stock row, the urgent task far less.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_perception.bench.executor_comparison import (
    OURS,
    OURS_ADAPTIVE,
    ROWS,
    STOCK,
    TaskRow,
    Workload,
    admitted_summary,
    build_workload,
    compare,
    mean_recall,
    overall_miss_ratio,
)
from edge_perception.core.config import PerceptionConfig
from edge_perception.figures import pyplot, save


@dataclass(frozen=True)
class LoadRun:
    """Every row measured once at one load."""

    load: float
    run: int
    workload: Workload
    rows: list[TaskRow]


def sweep(base: PerceptionConfig, out_dir: Path, *, loads: Sequence[float], runs: int,
          frames: int, sign_tasks: int, resolution: tuple[int, int] | None = None,
          rows: Sequence[str] = tuple(ROWS),
          progress: Callable[[str], None] = lambda _: None) -> list[LoadRun]:
    """``runs`` runs of every row at each load; a load's workload (task set, bag) is built
    once, from this machine's measured stage times, so its runs differ only by chance."""
    measured = []
    for load in loads:
        folder = out_dir / f'load_{load:g}'
        folder.mkdir(parents=True, exist_ok=True)
        workload = build_workload(base, folder, load=load, sign_tasks=sign_tasks,
                                  frames=frames, process_per_lane=True, resolution=resolution)
        for run in range(runs):
            progress(f'load {load:g}x, run {run + 1}/{runs}: camera {workload.rate_hz:.1f} Hz')
            measured.append(LoadRun(load, run, workload,
                                    compare(workload, rows=rows, progress=progress)))
    return measured


def _spread(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f'{values[0]:.3f}'
    return f'{np.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]'


def _urgent(run: LoadRun, executor: str) -> TaskRow:
    return next(r for r in run.rows
                if r.executor == executor and r.task == run.workload.urgent_task)


def format_sweep(runs: Sequence[LoadRun]) -> str:
    """Per load and row: overall and urgent-task miss ratio (median [min-max] over runs),
    urgent p99, mean recall; then the targets checked."""
    names = list(dict.fromkeys(r.executor for run in runs for r in run.rows))
    lines = [f'{"load":>5} {"executor":<36} {"miss ratio (all)":>22} '
             f'{"urgent miss ratio":>22} {"urgent p99 ms":>13} {"recall":>6}']
    for load in sorted({run.load for run in runs}):
        at_load = [run for run in runs if run.load == load]
        for name in names:
            overall = [overall_miss_ratio(run.rows, name) for run in at_load]
            urgent = [_urgent(run, name).miss_ratio for run in at_load]
            p99 = float(np.median([_urgent(run, name).p99_ms for run in at_load]))
            recall = float(np.median([mean_recall(run.rows, name) for run in at_load]))
            lines.append(f'{load:>5g} {name:<36} {_spread(overall):>22} {_spread(urgent):>22} '
                         f'{p99:>13.1f} {recall:>6.3f}')
    lines.append('')
    lines.extend(verdicts(runs))
    return '\n'.join(lines)


def verdicts(runs: Sequence[LoadRun]) -> list[str]:
    """The benchmark's targets, load by load: ours misses nothing the analysis admits at
    <= 1.0x; above, fewer misses than the best stock row (median over runs)."""
    lines = []
    for load in sorted({run.load for run in runs}):
        at_load = [run for run in runs if run.load == load]
        if load <= 1.0:
            for run in at_load:
                lines.append(f'{load:g}x run {run.run + 1}: {admitted_summary(run.rows, OURS)}')
            continue
        stock = [n for n in STOCK if any(r.executor == n for r in at_load[0].rows)]
        if not stock:
            continue
        best = min(stock, key=lambda n: np.median([overall_miss_ratio(r.rows, n)
                                                   for r in at_load]))
        best_ratio = float(np.median([overall_miss_ratio(r.rows, best) for r in at_load]))
        best_urgent = float(np.median([_urgent(r, best).miss_ratio for r in at_load]))
        for mine in (OURS, OURS_ADAPTIVE):
            ratio = float(np.median([overall_miss_ratio(r.rows, mine) for r in at_load]))
            urgent = float(np.median([_urgent(r, mine).miss_ratio for r in at_load]))
            fewer = 1 - ratio / best_ratio if best_ratio > 0 else math.nan
            lines.append(f'{load:g}x: {mine} vs the best stock row ({best}): {fewer:.1%} fewer '
                         f'misses (target >= 40%); urgent task {urgent:.3f} vs {best_urgent:.3f}'
                         ' (target <= a tenth)')
    return lines


def _overall(run: LoadRun, executor: str) -> float:
    return overall_miss_ratio(run.rows, executor)


def _urgent_p99(run: LoadRun, executor: str) -> float:
    return _urgent(run, executor).p99_ms


def plot_sweep(runs: Sequence[LoadRun], path: Path) -> None:
    """Miss ratio (all tasks) and the urgent task's p99 response against load, per row:
    medians over runs, bars from min to max."""
    plt = pyplot()
    figure, (misses, p99) = plt.subplots(1, 2, figsize=(12, 4.5))
    loads = sorted({run.load for run in runs})
    names = list(dict.fromkeys(r.executor for run in runs for r in run.rows))
    for index, name in enumerate(names):
        style = '-o' if name in (OURS, OURS_ADAPTIVE) else '--s'
        for axis, value in ((misses, _overall), (p99, _urgent_p99)):
            per_load = [[value(run, name) for run in runs if run.load == load]
                        for load in loads]
            median = np.array([np.median(v) for v in per_load])
            below = median - np.array([min(v) for v in per_load])
            above = np.array([max(v) for v in per_load]) - median
            axis.errorbar(loads, median, yerr=[below, above], fmt=style, color=f'C{index}',
                          capsize=3, label=name)
    deadlines = sorted({run.workload.config.task(run.workload.urgent_task).deadline_ms
                        for run in runs})
    misses.set_xlabel('load of the busier lane (measured cost / camera period)')
    misses.set_ylabel('deadline miss ratio, all tasks')
    misses.axvline(1.0, color='black', linestyle=':')
    p99.set_xlabel('load of the busier lane')
    p99.set_ylabel('urgent task (traffic_light): p99 response (ms)')
    p99.set_yscale('log')
    p99.set_title(f'deadline {deadlines[0]:.0f}-{deadlines[-1]:.0f} ms (period shrinks with load)',
                  fontsize=9)
    misses.legend(fontsize=7)
    figure.suptitle('Same recorded drive through each executor, by load (median, min-max of '
                    f'{max(run.run for run in runs) + 1} runs)')
    save(figure, path)
