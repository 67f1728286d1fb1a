"""Bring-up below ROS: from a config to loaded models, chosen variants, a scheduler and lanes.

The container only wires ROS to what this builds (nodes, subscriptions, publishers); a
benchmark or a test can build the same runtime without a node.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edge_perception.core.adaptation import TaskVariants, VariantOption, choose_variants
from edge_perception.core.config import PerceptionConfig
from edge_perception.core.jobs import JobOutcome
from edge_perception.core.scheduler import DeadlineScheduler
from edge_perception.core.scheduling import padded
from edge_perception.core.thread_setup import configure_current_thread
from edge_perception.runtime.engines import ModelEngines
from edge_perception.runtime.manifest import ModelLoadError
from edge_perception.runtime.task_models import Placement, TaskModels
from edge_perception.runtime.tvm.store import ModelStore
from edge_perception.runtime.tvm.target import cuda_available
from edge_perception.synthetic.scenes import generate_frame
from edge_perception.tasks.frames import BgrImage, Frame
from edge_perception.tasks.pipelines import Infer, TaskPipeline

PROFILE_RUNS = 3


class Log(Protocol):
    """What bring-up reports through: a ROS node's logger or a logging.Logger."""

    def info(self, message: str) -> object: ...

    def warning(self, message: str) -> object: ...

    def error(self, message: str) -> object: ...


@dataclass
class PerceptionRuntime:
    """Everything that runs a config's tasks, ROS aside.

    ``models``: the tasks whose models loaded; ``failures``: why the others could not
    (reported as ERROR). ``variant_table``: every variant's profiled stages and accuracy,
    None when neither chosen nor adapted."""

    config: PerceptionConfig
    store: ModelStore
    engines: ModelEngines
    lane_devices: dict[str, str]
    models: dict[str, TaskModels]
    failures: dict[str, str]
    scheduler: DeadlineScheduler
    variant_table: dict[str, TaskVariants] | None

    def variants(self) -> dict[str, str]:
        return {task: models.variant for task, models in self.models.items()}

    def task_engines(self) -> dict[str, str]:
        """What runs each task's models at its current variant: tvm, onnxruntime or both."""
        engines = {}
        for name, models in self.models.items():
            task = self.config.task(name)
            device = self.lane_devices[task.lane]
            kinds = {self.engines.chosen.get((model, models.variant, device), '?')
                     for model in task.models}
            engines[name] = '+'.join(sorted(kinds))
        return engines

    def untuned(self) -> dict[str, str]:
        """Tasks whose current variant runs a model on onnxruntime for want of tuning
        records (engine auto): the command that tunes it."""
        untuned = {}
        for name, models in self.models.items():
            task = self.config.task(name)
            for model in task.models:
                key = (model, models.variant, self.lane_devices[task.lane])
                if key in self.engines.untuned:
                    untuned[name] = self.engines.untuned[key]
        return untuned


def bring_up(config: PerceptionConfig, *, log: Log, only_task: str | None = None,
             only_lane: str | None = None, profile: bool = True, select_variants: bool = True,
             on_outcome: Callable[[JobOutcome], None] | None = None) -> PerceptionRuntime:
    """Load every task's models (each variant, stage and batch size), build the scheduler
    and its lanes; with ``profile``, time every variant on a busy frame, and with
    ``select_variants`` run the most accurate combination the analysis accepts (RT-mDL).

    ``only_task`` / ``only_lane``: that task or lane alone (a lane's process then runs at
    its lane's priority, see below)."""
    if only_task is not None:
        config = dataclasses.replace(config, tasks=(config.task(only_task),))
    if only_lane is not None:
        config = config.for_lane(only_lane)
        lane = config.lanes[0]
        # The thread that builds the container spins it: on the lane's CPUs, as a stock
        # executor's one thread (elsewhere, a SCHED_FIFO spinning thread took the other lane's
        # core at every frame), and never below the lane, whose jobs wait for the GIL it
        # holds. One real-time level above the lane: a frame is taken when it arrives, not
        # when the lane next sleeps (executor benchmark, 1.2x load, 2 cores: urgent task p99
        # 15.2 -> 8.2 ms, 6 -> 1 of 200 deadlines missed). DDS threads stay anywhere.
        for line in configure_current_thread(
                lane=f'{only_lane} (spinning thread)',
                rt_priority=None if lane.rt_priority is None else min(lane.rt_priority + 1, 99),
                nice=lane.nice, cpus=lane.cpus):
            log.info(line)
    store = ModelStore.of(config.model_dir)
    engines = ModelEngines(store, config.model_engines(), log=log)
    devices = {lane.name: _device(lane.name, lane.device, log) for lane in config.lanes}
    placements = {lane.name: Placement(devices[lane.name], lane.threads)
                  for lane in config.lanes}
    max_batch = {lane.name: lane.max_batch for lane in config.lanes}
    models, failures = {}, {}
    for task in config.tasks:
        try:
            models[task.name] = TaskModels(
                task, engines, lanes=placements,
                batch_sizes=range(1, max_batch[task.lane] + 1))
        except ModelLoadError as err:  # reported on /diagnostics; the other tasks run
            failures[task.name] = str(err)
            log.error(f'task {task.name} disabled: {err}')
    runtime = PerceptionRuntime(
        config, store, engines, devices, models, failures,
        DeadlineScheduler(config, devices=devices, on_outcome=on_outcome), None)
    if profile:
        runtime.variant_table = profile_variants(runtime)
        if select_variants:
            _select_variants(runtime, log)
    else:
        warm_up(runtime)
    return runtime


def _device(lane: str, device: str, log: Log) -> str:
    if device == 'cuda' and not cuda_available():
        log.warning(f'lane {lane}: no CUDA device, falling back to the CPU')
        return 'cpu'
    return device


def busy_frame() -> BgrImage:
    """A synthetic frame with many objects: the worst case of the post-processing stages."""
    return max((generate_frame('demo', i) for i in range(20)), key=lambda f: len(f.objects)).image


def profile_variants(runtime: PerceptionRuntime) -> dict[str, TaskVariants]:
    """Stage times of every variant on a busy synthetic frame, and their accuracy."""
    frame = busy_frame()
    table = {}
    for name, models in runtime.models.items():
        task = runtime.config.task(name)
        pipeline = models.pipeline
        start_variant = models.variant
        options = []
        for variant in task.variants:
            models.variant = variant
            stage_ns = profile_stages(pipeline, models, frame)
            metrics = {model: runtime.store.manifest.variant(model, variant).metrics
                       for model in task.models}
            options.append(VariantOption(variant, pipeline.accuracy(metrics),
                                         padded(stage_ns, runtime.config.wcet_margin)))
        models.variant = start_variant
        table[name] = TaskVariants(name, task.lane, task.period_ns, task.deadline_ns,
                                   tuple(options))
    return table


def warm_up(runtime: PerceptionRuntime) -> None:
    """Run every task's current variant once on a busy frame: the first call loads its
    modules and faults their pages in (~60 ms on the executor benchmark's sign tasks), which
    the first camera frames would otherwise wait for."""
    frame = busy_frame()
    for models in runtime.models.values():
        profile_stages(models.pipeline, models, frame, runs=0)


def _select_variants(runtime: PerceptionRuntime, log: Log) -> None:
    assert runtime.variant_table is not None
    selection = choose_variants(list(runtime.variant_table.values()))
    for task, variant in selection.variants.items():
        models = runtime.models[task]
        if models.variant != variant:
            log.info(f'task {task}: variant {models.variant} -> {variant} '
                     '(start-up selection by response-time analysis)')
            models.variant = variant
            runtime.scheduler.forget_timing(task)
    verdict = 'schedulable' if selection.schedulable else 'NOT schedulable even so'
    log.info(f'variants {selection.variants}: {verdict} (profiled on this machine)')


def profile_stages(pipeline: TaskPipeline, infer: Infer, frame: BgrImage, *,
                   runs: int = PROFILE_RUNS) -> tuple[int, ...]:
    """Per-stage maxima (ns) of ``runs`` runs of ``pipeline`` on ``frame``, after one untimed
    run; a stage is one request plus the code up to the next (what a lane runs without
    preemption)."""
    worst: list[int] = []
    # The first call loads the module (from disk, or a fresh build) and faults its pages in:
    # one such outlier made a test's "3x the worst response" deadline 735 ms instead of ~60.
    for warm_up in (True, *([False] * runs)):
        stages, times = pipeline.stages(Frame(frame)), []  # its own Frame: no cached input
        try:
            request = next(stages)
            while True:
                start = time.perf_counter_ns()
                try:
                    request = stages.send(infer(request.model, request.inputs))
                finally:
                    times.append(time.perf_counter_ns() - start)
        except StopIteration:
            pass
        if not warm_up:
            worst = times if len(worst) != len(times) else [max(a, b) for a, b in
                                                              zip(worst, times, strict=True)]
    return tuple(worst)
