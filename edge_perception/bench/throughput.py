"""Multi-stream throughput: one lane vs two lanes (task-parallel) vs a pipelined model.

Every stream is a camera whose next frame is ready the moment its previous one is done
(saturated: frames per second is measured, not deadlines). The modes run the same detector
variant on the same frames through the real scheduler, lanes and TVM modules:

* ``sequential``: every stream on one lane (one core): the baseline;
* ``parallel``: streams alternate over the two lanes (Kim et al. 2020, task-level);
* ``pipelined``: the detector split at the profiled balance point, its front on one lane
  and its back on the other (IEEE Access 2023), so consecutive frames overlap.

On a CPU-only host the two lanes are CPU workers pinned to different cores; with CUDA the
second lane is the GPU. Accuracy is equal by construction: a split model's output equals
the whole one's (tested), and the benchmark checks that every mode found the same lights.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_perception.core.config import PerceptionConfig, parse_config
from edge_perception.core.jobs import Job, JobOutcome
from edge_perception.core.scheduler import DeadlineScheduler
from edge_perception.figures import pyplot, save
from edge_perception.runtime.task_models import Placement, TaskModels
from edge_perception.runtime.tvm.store import ModelStore
from edge_perception.runtime.tvm.target import cuda_available
from edge_perception.synthetic.scenes import generate_frame
from edge_perception.tasks.detections import Detection
from edge_perception.tasks.frames import BgrImage, Frame

MODES = ('sequential', 'parallel', 'pipelined')
_NO_DEADLINE_NS = 60 * 10**9  # saturated streams: nothing may be dropped as stale


@dataclass(frozen=True)
class ThroughputRow:
    mode: str
    streams: int
    frames: int
    seconds: float
    stage_ms: tuple[float, ...]  # profiled stages of the detector in this mode

    @property
    def fps(self) -> float:
        return self.frames / self.seconds


def _config(model_dir: Path, mode: str, streams: int, variant: str) -> PerceptionConfig:
    two_cores = (os.cpu_count() or 1) >= 2
    lanes = {'cpu': {'device': 'cpu', 'cpus': [0] if two_cores else []},
             'gpu': {'device': 'cuda', 'cpus': [1] if two_cores else []}}
    tasks = []
    for i in range(streams):
        lane = 'gpu' if mode == 'parallel' and i % 2 else 'cpu'
        tasks.append({
            'name': f'stream_{i}', 'node': f'stream_{i}', 'pipeline': 'centernet',
            'period_ms': 1000.0, 'deadline_ms': 1000.0, 'lane': lane, 'models': ['detector'],
            'variants': [variant], 'variant': variant,
            'input_topic': f'/camera_{i}/image_raw', 'output_topic': f'/lights_{i}',
            'stages': ['cpu', 'gpu'] if mode == 'pipelined' else [lane]})
    raw = {'model_dir': str(model_dir.resolve()), 'lanes': lanes, 'tasks': tasks}
    return parse_config(raw, source=model_dir / f'throughput-{mode}.yaml')


class _Streams:
    """Keeps one frame of every stream in flight and counts completions.

    A feeder thread releases each stream's next frame (running its pre-processing), as the
    container's executor thread does, so the lanes run only their stages.
    """

    def __init__(self, scheduler: DeadlineScheduler, models: dict[str, TaskModels],
                 frames: Sequence[BgrImage]) -> None:
        self._scheduler = scheduler
        self._models = models
        self._frames = frames
        self._lock = threading.Lock()
        self._next = dict.fromkeys(models, 0)
        self.completed = 0
        self.failed = 0
        self.running = True
        self.first: dict[str, list[Detection]] = {}
        self._due: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._feeder = threading.Thread(target=self._feed, name='stream-feeder', daemon=True)

    def start(self) -> None:
        self._feeder.start()
        for task in self._models:
            self._due.put(task)

    def _feed(self) -> None:
        while (task := self._due.get()) is not None:
            self.submit(task)

    def submit(self, task: str) -> None:
        with self._lock:
            index = self._next[task]
            self._next[task] += 1
        image = self._frames[index % len(self._frames)]
        now = self._scheduler.clock.now_ns()
        job = Job(task=task, priority=self._scheduler.priorities[task], release_ns=now,
                  deadline_ns=now + _NO_DEADLINE_NS, stages=self._work(task, image, index))
        self._scheduler.lanes[self._scheduler.tasks[task].lane].submit(job)

    def _work(self, task: str, image: BgrImage, index: int) -> Generator[Any, Any, None]:
        # A Frame per job: each stream is another camera, nothing is shared between them.
        detections = yield from self._models[task].drive(
            self._models[task].pipeline.stages(Frame(image)))
        if index == 0:
            self.first[task] = detections

    def stop(self) -> None:
        with self._lock:
            self.running = False
        self._due.put(None)
        self._feeder.join(timeout=5.0)

    def on_outcome(self, outcome: JobOutcome) -> None:
        with self._lock:
            if not self.running:
                return  # shutting down: the lanes drain what is queued
            if outcome.dropped is None:
                self.completed += 1
            else:
                self.failed += 1
        self._due.put(outcome.task)


def measure(model_dir: Path, *, streams: Sequence[int], seconds: float, variant: str = 'full',
            frames: int = 16,
            progress: Callable[[str], None] = lambda line: None) -> list[ThroughputRow]:
    """FPS of every mode at every stream count, measured one after another in this run."""
    images = [generate_frame('test', i).image for i in range(frames)]
    store = ModelStore.of(model_dir)
    placements = {'cpu': Placement('cpu', 1),
                  'gpu': Placement('cuda' if cuda_available() else 'cpu', 1)}
    rows: list[ThroughputRow] = []
    reference: list[Detection] = []
    for count in streams:
        for mode in MODES:
            config = _config(model_dir, mode, count, variant)
            row, first = _run(config, store, placements, images, mode=mode, seconds=seconds)
            if not rows or rows[-1].streams != count:
                reference = first
            if _labels(first) != _labels(reference):
                raise RuntimeError(f'{mode} with {count} streams found other lights '
                                   f'({_labels(first)}) than sequential ({_labels(reference)})')
            rows.append(row)
            progress(f'{mode:<10} {count} streams: {row.fps:6.1f} FPS')
    return rows


def _labels(detections: Sequence[Detection]) -> list[tuple[str, int, int]]:
    return sorted((d.label, round(d.x), round(d.y)) for d in detections)


def _run(config: PerceptionConfig, store: ModelStore, placements: dict[str, Placement],
         images: Sequence[BgrImage], *, mode: str,
         seconds: float) -> tuple[ThroughputRow, list[Detection]]:
    """One mode: its streams saturated for ``seconds``; the row and stream 0's first lights."""
    models = {t.name: TaskModels(t, store, lanes=placements) for t in config.tasks}
    variant = config.tasks[0].variant
    stage_ms = tuple(s.profiled_ns / 1e6 for s in models['stream_0'].stages['detector', variant])
    driver: _Streams
    scheduler = DeadlineScheduler(
        config, devices={lane: p.device for lane, p in placements.items()},
        on_outcome=lambda outcome: driver.on_outcome(outcome))
    driver = _Streams(scheduler, models, images)
    scheduler.start()
    try:
        driver.start()
        time.sleep(min(1.0, seconds / 4))  # warm-up: thread pools, caches
        start_frames, start = driver.completed, time.perf_counter()
        time.sleep(seconds)
        frames, spent = driver.completed - start_frames, time.perf_counter() - start
    finally:
        driver.stop()
        scheduler.stop()
    if driver.failed:
        raise RuntimeError(f'{mode}: {driver.failed} jobs failed or were dropped')
    row = ThroughputRow(mode, len(config.tasks), frames, spent, stage_ms)
    return row, driver.first.get('stream_0', [])


def format_rows(rows: Sequence[ThroughputRow]) -> str:
    lines = [f'{"streams":>7} ' + ' '.join(f'{m:>11}' for m in MODES)
             + '  best/sequential  detector stages (ms)']
    for count in sorted({r.streams for r in rows}):
        mine = {r.mode: r for r in rows if r.streams == count}
        best = max(mine[m].fps for m in MODES[1:])
        stages = ' + '.join(f'{t:.1f}' for t in mine['pipelined'].stage_ms)
        lines.append(f'{count:>7} ' + ' '.join(f'{mine[m].fps:>7.1f} FPS' for m in MODES)
                     + f'  {best / mine["sequential"].fps:>14.2f}x  {stages}')
    return '\n'.join(lines)


def plot(rows: Sequence[ThroughputRow], path: Path) -> None:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for mode in MODES:
        mine = sorted((r for r in rows if r.mode == mode), key=lambda r: r.streams)
        axis.plot([r.streams for r in mine], [r.fps for r in mine], 'o-', label=mode)
    axis.set_xlabel('camera streams')
    axis.set_ylabel('frames per second (all streams)')
    axis.set_xticks(sorted({r.streams for r in rows}))
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend()
    axis.set_title('Detector throughput: one lane vs two lanes')
    save(figure, path)

