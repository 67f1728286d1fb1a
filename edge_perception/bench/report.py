"""``edge-perception bench``: every benchmark of the project in one run, as a Markdown report
with PNG figures. Each figure compares things measured side by side in this run, on this
machine (its description heads the report); nothing is copied from earlier runs.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from edge_perception.core.config import PerceptionConfig

SECTIONS = ('models', 'batch', 'throughput', 'executors', 'transport')
CAMERA_FPS = 30.0


@dataclass(frozen=True)
class BenchSettings:
    """How much of each benchmark to run: ``quick`` fits CI, ``full`` is the real run."""

    model_batches: tuple[int, ...]
    model_threads: tuple[int, ...]
    model_repeats: int
    batch_sizes: tuple[int, ...]
    batch_repeats: int
    streams: tuple[int, ...]
    stream_seconds: float
    executor_frames: int
    executor_loads: tuple[float, ...]
    executor_runs: int
    camera_rates: tuple[float, ...]  # the F1TENTH rate search
    rate_seconds: float
    transport_frames: int
    resolution: tuple[int, int] | None = None  # the executor benchmark's frames (320x240)

    @classmethod
    def named(cls, mode: str) -> BenchSettings:
        if mode == 'quick':
            return cls((1,), (1,), 10, (1, 2, 4), 5, (1, 2), 2.0, 60, (0.8, 1.2), 1,
                       (30.0, 120.0), 3.0, 30)
        if mode == 'full':
            return cls((1, 4), (1, 2), 50, (1, 2, 4, 8), 20, (1, 2, 3, 4), 10.0, 200,
                       (0.6, 0.8, 1.0, 1.2, 1.5), 3, (30.0, 60.0, 120.0, 240.0, 480.0, 960.0), 5.0,
                       300)
        raise ValueError(f'unknown bench mode {mode!r} (choose quick or full)')


def machine() -> str:
    """One line on what ran the benchmarks."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    from edge_perception.runtime.tvm.target import cuda_available, host_target

    versions = ', '.join(f'{name} {metadata.version(name)}'
                         for name in ('apache-tvm', 'onnxruntime', 'numpy'))
    gpu = 'CUDA device present' if cuda_available() else 'no GPU'
    host = host_target()
    llvm = ' '.join([host.triple, host.mcpu, *host.mattr])
    return (f'{cpu} (LLVM {llvm}), {len(os.sched_getaffinity(0))} cores usable, '
            f'{gpu}; Python {sys.version.split()[0]}, {versions}')


def run(config: PerceptionConfig, out_dir: Path, *, mode: str,
        sections: tuple[str, ...] = SECTIONS, resolution: tuple[int, int] | None = None,
        say: Callable[[str], None] = print) -> Path:
    """Run ``sections`` and write ``out_dir/report.md`` with its figures; returns the path."""
    settings = dataclasses.replace(BenchSettings.named(mode), resolution=resolution)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    parts = [f'# edge_perception benchmark report ({mode})', '',
             f'Machine: {machine()}', '',
             'Every table and figure below was measured in this one run.', '']
    for section in sections:
        say(f'== {section}')
        parts.extend(_SECTIONS[section](config, out_dir, settings, say))
        parts.append('')
    parts.append(f'Total benchmark time: {time.monotonic() - started:.0f} s.')
    report = out_dir / 'report.md'
    report.write_text('\n'.join(parts) + '\n', encoding='utf-8')
    return report


def _block(text: str) -> list[str]:
    return ['```', text, '```']


def _models(config: PerceptionConfig, out_dir: Path, settings: BenchSettings,
            say: Callable[[str], None]) -> list[str]:
    from edge_perception.bench import model_latency
    from edge_perception.runtime.tvm.store import ModelStore
    from edge_perception.runtime.tvm.target import cuda_available

    store = ModelStore.of(config.model_dir)
    untuned = ModelStore(store.manifest, cache_dir=store.cache_dir, use_tuning=False)
    devices = ['cpu', 'cuda'] if cuda_available() else ['cpu']
    rows = [row for device in devices
            for row in model_latency.measure(store, untuned, batches=settings.model_batches,
                                             threads=settings.model_threads,
                                             repeats=settings.model_repeats, device=device)]
    table = model_latency.format_rows(rows)
    say(table)
    model_latency.plot(rows, out_dir / 'model_latency.png')
    return ['## TVM vs onnxruntime, per model and variant', *_block(table), '',
            '![TVM vs onnxruntime](model_latency.png)']


def _batch(config: PerceptionConfig, out_dir: Path, settings: BenchSettings,
           say: Callable[[str], None]) -> list[str]:
    from edge_perception.bench import batch_size
    from edge_perception.runtime.tvm.store import ModelStore

    store = ModelStore.of(config.model_dir)
    curves = batch_size.measure(
        store, models=[('detector', 'full'), ('detector', 'quarter'),
                       ('sign_classifier', 'full')],
        batches=settings.batch_sizes, repeats=settings.batch_repeats)
    # A 30 fps camera into the task with the most slack: where batching frames can pay.
    slack = max(config.tasks, key=lambda task: task.deadline_ms)
    table = batch_size.format_curves(curves, fps=CAMERA_FPS, deadline_ms=slack.deadline_ms)
    say(table)
    batch_size.plot(curves, out_dir / 'batch_latency.png')
    return ['## Latency vs batch size (Kum et al. frame-budget rule)', *_block(table), '',
            '![latency vs batch size](batch_latency.png)']


def _throughput(config: PerceptionConfig, out_dir: Path, settings: BenchSettings,
                say: Callable[[str], None]) -> list[str]:
    from edge_perception.bench import throughput

    rows = throughput.measure(config.model_dir, streams=settings.streams,
                              seconds=settings.stream_seconds, progress=say)
    table = throughput.format_rows(rows)
    say(table)
    throughput.plot(rows, out_dir / 'throughput.png')
    return ['## Multi-stream throughput: one lane vs two lanes (detector full)',
            *_block(table), '', '![FPS vs streams](throughput.png)']


def _executors(config: PerceptionConfig, out_dir: Path, settings: BenchSettings,
               say: Callable[[str], None]) -> list[str]:
    from edge_perception.bench import executor_comparison, executor_sweep, f1tenth_rates

    with tempfile.TemporaryDirectory() as scratch:
        runs = executor_sweep.sweep(
            config, Path(scratch) / 'sweep', loads=settings.executor_loads,
            runs=settings.executor_runs, frames=settings.executor_frames, sign_tasks=10,
            resolution=settings.resolution, progress=say)
        rates = f1tenth_rates.rate_search(config, Path(scratch), rates=settings.camera_rates,
                                          seconds=settings.rate_seconds, progress=say)
    summary = executor_sweep.format_sweep(runs)
    say(summary)
    executor_sweep.plot_sweep(runs, out_dir / 'executor_sweep.png')
    # Per task, at the most loaded point's first run: every KPI and our analysis.
    detail = max(runs, key=lambda run: (run.load, -run.run))
    table = executor_comparison.format_report(detail.workload, detail.rows)
    say(table)
    executor_comparison.plot(detail.workload, detail.rows, out_dir / 'executors.png')
    rate_table = f1tenth_rates.format_rates(rates)
    say(rate_table)
    f1tenth_rates.plot_rates(rates, out_dir / 'camera_rates.png')
    return ['## Deadline misses: DeadlineExecutor vs stock ROS 2 executors, by load',
            *_block(summary), '', '![miss ratio and urgent p99 vs load](executor_sweep.png)', '',
            f'### Per task at {detail.load:g}x load (run 1)', *_block(table), '',
            '![response-time CDFs](executors.png)', '',
            "## Highest camera rate sustained: F1TENTH configuration with a car's other work",
            *_block(rate_table), '', '![sustained camera rate](camera_rates.png)']


def _transport(config: PerceptionConfig, out_dir: Path, settings: BenchSettings,
               say: Callable[[str], None]) -> list[str]:
    from edge_perception.bench import transport

    rows = transport.measure(frames=settings.transport_frames, rate_hz=CAMERA_FPS, progress=say)
    table = transport.format_rows(rows)
    say(table)
    transport.plot(rows, out_dir / 'transport.png')
    return [f'## Camera frames into the container at {CAMERA_FPS:g} Hz (DDS, two processes)',
            *_block(table), '', '![frames received](transport.png)']


_SECTIONS = {'models': _models, 'batch': _batch, 'throughput': _throughput,
             'executors': _executors, 'transport': _transport}
