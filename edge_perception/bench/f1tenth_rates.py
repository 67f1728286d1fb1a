"""The highest camera rate each executor sustains on the F1TENTH configuration as shipped
(lights every 100 ms, signs every 200 ms), with a car's other work running beside it
(bench.car_load: a 50 Hz control loop and a CPU-heavy nice-10 job): the method of NVIDIA's
ros2_benchmark, the maximum input rate with bounded drops, here < 1 % deadline misses of
the urgent task (traffic_light).

Ours takes one frame per task period and lets the rest go; a stock executor runs every
frame it takes, so a faster camera costs it more inference, not only more transport.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from edge_perception.bench.executor_comparison import (
    OURS,
    OURS_ADAPTIVE,
    ROWS,
    TaskRow,
    Workload,
    admitted_summary,
    compare,
    dedicate_urgent_core,
    overall_miss_ratio,
)
from edge_perception.core.config import PerceptionConfig, load_config
from edge_perception.figures import pyplot, save
from edge_perception.tools.bags import write_synthetic_bag
from edge_perception.tools.lane_processes import ChildProcesses

SUSTAINED = 0.01  # the urgent task's miss ratio a sustained rate stays under
# and the share of camera frames that may fail to reach DDS (a reader too slow for a reliable
# stream fills the writer's history: the camera itself cannot go on at that rate)
UNSENT = 0.01
URGENT_TASK = 'traffic_light'
# A car camera's frames (F1TENTH's RealSense D435i streams 640x480): at 320x240 every row
# held 960 Hz and the search told nothing apart.
CAMERA_RESOLUTION = (640, 480)


@dataclass(frozen=True)
class RateRun:
    rate_hz: float
    rows: list[TaskRow]

    def urgent(self, executor: str) -> TaskRow | None:
        """The urgent task's row (None: ``executor`` was not run at this rate)."""
        return next((r for r in self.rows if r.executor == executor and r.task == URGENT_TASK),
                    None)

    def urgent_miss_ratio(self, executor: str) -> float:
        row = self.urgent(executor)
        return math.nan if row is None else row.miss_ratio

    def unsent_ratio(self, executor: str) -> float:
        row = self.urgent(executor)
        if row is None or row.frames + row.unsent == 0:
            return 0.0
        return row.unsent / (row.frames + row.unsent)

    def held(self, executor: str) -> bool:
        return (self.urgent(executor) is not None
                and self.urgent_miss_ratio(executor) < SUSTAINED
                and self.unsent_ratio(executor) <= UNSENT)


def f1tenth_workload(base: PerceptionConfig, folder: Path, *, rate_hz: float,
                     seconds: float) -> Workload:
    """The shipped tasks and QoS, with a process per lane and the stress benchmark's pinning
    (rows that run one process drop them again), and a drive at ``rate_hz``."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load(base.source.read_text())
    raw['model_dir'] = str(base.model_dir)
    raw['process_per_lane'] = True
    urgent_lane = next(t['lane'] for t in raw['tasks'] if t['name'] == URGENT_TASK)
    other = next(lane for lane in raw['lanes'] if lane != urgent_lane)
    dedicate_urgent_core(raw, urgent_lane=urgent_lane, other_lane=other, other_nice=10,
                         urgent_rt_priority=10)
    path = folder / 'f1tenth_workload.yaml'
    path.write_text(yaml.safe_dump(raw))
    bag = folder / 'f1tenth_bag'
    write_synthetic_bag(bag, frames=max(10, round(rate_hz * seconds)), rate_hz=rate_hz,
                        resolution=CAMERA_RESOLUTION)
    return Workload(load_config(path), rate_hz, {}, bag, URGENT_TASK)


def rate_search(base: PerceptionConfig, out_dir: Path, *, rates: Sequence[float],
                seconds: float, rows: Sequence[str] = tuple(ROWS),
                progress: Callable[[str], None] = lambda _: None) -> list[RateRun]:
    """The rows at increasing camera rates, the car's background work running throughout;
    a row that did not hold a rate is not tried at the higher ones."""
    runs: list[RateRun] = []
    rows = list(rows)
    with ChildProcesses(log_dir=out_dir) as background:
        for job in ('control', 'hog'):
            background.start(f'car_{job}', [sys.executable, '-m',
                                            'edge_perception.bench.car_load', job])
        for rate in rates:
            workload = f1tenth_workload(base, out_dir / f'rate_{rate:g}', rate_hz=rate,
                                        seconds=seconds)
            progress(f'F1TENTH at {rate:g} Hz, with a 50 Hz control loop and a nice-10 job')
            runs.append(RateRun(rate, compare(workload, rows=rows, progress=progress)))
            background.check()
            rows = [name for name in rows if runs[-1].held(name)]
            if not rows:
                break
    return runs


def sustained_rates(runs: Sequence[RateRun]) -> dict[str, float]:
    """Per row, the highest rate below which the urgent task missed < 1 % and the camera
    sent >= 99 % of its frames at every rate tried (nan: not even the lowest)."""
    names = list(dict.fromkeys(r.executor for run in runs for r in run.rows))
    best = {}
    for name in names:
        held = math.nan
        for run in sorted(runs, key=lambda r: r.rate_hz):
            if not run.held(name):
                break
            held = run.rate_hz
        best[name] = held
    return best


def format_rates(runs: Sequence[RateRun]) -> str:
    names = list(dict.fromkeys(r.executor for run in runs for r in run.rows))
    rates = sorted(run.rate_hz for run in runs)
    head = ' '.join(f'{rate:>8g}Hz' for rate in rates)
    lines = ['urgent task (traffic_light, deadline 100 ms) miss ratio by camera rate; '
             'overall in brackets', f'{"executor":<36} {head} {"sustained":>10}']
    held = sustained_rates(runs)
    for name in names:
        cells = ' '.join(_cell(run, name) for run in sorted(runs, key=lambda r: r.rate_hz))
        rate = held[name]
        shown = 'none' if math.isnan(rate) else (
            f'>={rate:g}Hz' if rate == rates[-1] else f'{rate:g}Hz')
        lines.append(f'{name:<36} {cells} {shown:>10}')
    lines.append(f'sustained: the highest rate tried with < {SUSTAINED:.0%} urgent misses at '
                 'it and every lower rate (>=: the highest rate tried held); "unsent": the '
                 'share of frames the camera could not hand to DDS')
    # The analysis' promise on the car's own task set, where it admits tasks.
    for run in sorted(runs, key=lambda r: r.rate_hz):
        for name in (OURS, OURS_ADAPTIVE):
            if any(r.executor == name for r in run.rows):
                lines.append(f'{run.rate_hz:g} Hz: {admitted_summary(run.rows, name)}')
    return '\n'.join(lines)


def _cell(run: RateRun, name: str) -> str:
    if run.urgent(name) is None:
        return f'{"-":>10}'
    unsent = run.unsent_ratio(name)
    if unsent > UNSENT:
        return f'{f"unsent {unsent:.0%}":>10}'
    return f'{run.urgent_miss_ratio(name):>5.3f}/{overall_miss_ratio(run.rows, name):<4.2f}'



def plot_rates(runs: Sequence[RateRun], path: Path) -> None:
    """Sustained camera rate per executor, and the urgent miss ratio against rate."""
    plt = pyplot()
    figure, (bars, curve) = plt.subplots(1, 2, figsize=(12, 4.5))
    held = sustained_rates(runs)
    names = list(held)
    bars.barh(np.arange(len(names)), [0 if math.isnan(held[n]) else held[n] for n in names],
              color=[f'C{i}' for i in range(len(names))])
    bars.set_yticks(np.arange(len(names)), names, fontsize=8)
    bars.invert_yaxis()
    bars.set_xlabel(f'highest camera rate with < {SUSTAINED:.0%} urgent misses and '
                    f'<= {UNSENT:.0%} frames unsent (Hz)')
    ordered = sorted(runs, key=lambda r: r.rate_hz)
    for index, name in enumerate(names):
        tried = [r for r in ordered if r.urgent(name) is not None]
        curve.plot([r.rate_hz for r in tried], [r.urgent_miss_ratio(name) for r in tried],
                   '-o' if 'ours' in name else '--s', color=f'C{index}', label=name)
    curve.set_xlabel('camera rate (Hz)')
    curve.set_ylabel('traffic_light miss ratio')
    curve.legend(fontsize=7)
    figure.suptitle('F1TENTH configuration as shipped, with a 50 Hz control loop and a '
                    'CPU-heavy nice-10 job beside it')
    save(figure, path)
