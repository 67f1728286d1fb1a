"""The models one task infers with, at its current variant, on the lanes of its stages."""

from __future__ import annotations

import itertools
from collections.abc import Generator, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edge_perception.core.config import PerceptionConfig, TaskConfig
from edge_perception.core.partitioning import balanced_cuts, stage_times
from edge_perception.runtime.engine import InferenceEngine, median_latency_ns
from edge_perception.runtime.manifest import ModelLoadError
from edge_perception.runtime.model_split import Part
from edge_perception.tasks.detections import Detection
from edge_perception.tasks.model_spec import ModelSpec
from edge_perception.tasks.pipelines import (
    Array,
    DetectionStages,
    Inference,
    PipelineError,
    TaskPipeline,
    make_pipeline,
)

PROFILE_RUNS = 15


class EngineSource(Protocol):
    """What :class:`TaskModels` needs from a model store (tvm.store.ModelStore and
    engines.ModelEngines have it)."""

    def spec(self, model: str) -> ModelSpec: ...

    def engine(self, model: str, variant: str, *, batch: int = 1, device: str = 'cpu',
               threads: int = 1, lane: str = 'main',
               part: Part | None = None) -> InferenceEngine: ...

    def loaded(self, model: str, variant: str, *, batch: int, device: str, threads: int,
               lane: str, part: Part | None = None) -> InferenceEngine | None: ...

    def cut_points(self, model: str, variant: str) -> list[str]: ...

    def parts(self, model: str, variant: str, cuts: Sequence[str]) -> list[Part]: ...


@dataclass(frozen=True)
class Placement:
    """Where a lane runs inference: its (effective) device and TVM thread count."""

    device: str
    threads: int


def cpu_placements(config: PerceptionConfig, threads: int = 1) -> dict[str, Placement]:
    """Every lane of ``config`` on the CPU with ``threads`` threads (benchmarks, tests)."""
    return {lane.name: Placement('cpu', threads) for lane in config.lanes}


@dataclass(frozen=True)
class Stage:
    """One stage of a model: a sub-model (None: the whole model) on a lane."""

    part: Part | None
    lane: str
    profiled_ns: int = 0


@dataclass(frozen=True, eq=False)
class ModelRequest:
    """A pipeline's :class:`Inference` (or one stage of it) bound to a task's models at its
    current variant: the request a lane runs, alone or packed with requests of the same key
    (core.jobs.Request)."""

    models: TaskModels
    model: str
    variant: str
    inputs: Array
    stage: Stage

    @property
    def key(self) -> Hashable:
        return (self.model, self.variant, self.stage.part, self.stage.lane)

    @property
    def lane(self) -> str:
        return self.stage.lane

    def batch_latency_ns(self, size: int) -> int | None:
        engine = self.models.loaded(self.model, self.variant, size, self.stage)
        return None if engine is None else engine.latency_ns

    def run_together(self, others: Sequence[Any]) -> list[Any]:
        requests = [self, *others]
        inputs = np.concatenate([r.inputs for r in requests]) if others else self.inputs
        output = self.models.run(self.model, self.variant, inputs, self.stage)
        bounds = np.cumsum([0, *(len(r.inputs) for r in requests)])
        return [output[start:end] for start, end in itertools.pairwise(bounds)]


class TaskModels:
    """Routes a task's (model, inputs) to its current variant, stage by stage, and holds
    the task's pipeline (made for its models as the manifest declares them).

    With one stage (the default) a model runs whole on the task's lane. With ``task.stages``
    naming several lanes, every model is split into that many sub-models at the cut points
    that balance the slowest one, from times profiled here at start-up (IEEE Access 2023's
    rule: a pipeline runs at the pace of its slowest stage).

    Switching ``variant`` is hot: every variant, stage and batch size is compiled and loaded
    at construction, so a switch or a packed batch never stalls a job on a compiler.
    """

    def __init__(self, task: TaskConfig, store: EngineSource, *,
                 lanes: Mapping[str, Placement], batch_sizes: Sequence[int] = (1,)) -> None:
        self.task = task
        try:
            self.pipeline: TaskPipeline = make_pipeline(
                task.pipeline, task.models, {model: store.spec(model) for model in task.models})
        except PipelineError as err:
            raise ModelLoadError(f'task {task.name!r}: {err}') from None
        self._store = store
        self._lanes = lanes
        self._variant = task.variant
        self.stages: dict[tuple[str, str], list[Stage]] = {}
        for variant in task.variants:
            for model in task.models:
                stages = self._partition(model, variant)
                self.stages[model, variant] = stages
                for stage in stages:
                    for batch in batch_sizes:
                        self._engine(model, variant, batch, stage)

    def _engine(self, model: str, variant: str, batch: int, stage: Stage) -> InferenceEngine:
        placement = self._lanes[stage.lane]
        return self._store.engine(model, variant, batch=batch, device=placement.device,
                                  threads=placement.threads, lane=stage.lane, part=stage.part)

    def _partition(self, model: str, variant: str) -> list[Stage]:
        """The task's stages for ``model``: cut where the profiled stage times balance."""
        lanes = self.task.stages
        if len(lanes) == 1:
            return [Stage(None, lanes[0])]
        cuts = self._store.cut_points(model, variant)
        segments = self._store.parts(model, variant, cuts)
        # Every segment is timed on every stage's device: a GPU lane is many times faster
        # than a CPU one, and the balance point must know it. Lanes alike are timed once.
        timed: dict[Placement, list[int]] = {}
        for lane in lanes:
            if self._lanes[lane] not in timed:
                timed[self._lanes[lane]] = [
                    median_latency_ns(self._engine(model, variant, 1, Stage(part, lane)),
                                      runs=PROFILE_RUNS)
                    for part in segments]
        times = [timed[self._lanes[lane]] for lane in lanes]
        chosen = balanced_cuts(times)
        parts = self._store.parts(model, variant, [cuts[i - 1] for i in chosen])
        return [Stage(part, lane, spent)
                for part, lane, spent in zip(parts, lanes, stage_times(times, chosen),
                                             strict=False)]

    @property
    def variant(self) -> str:
        return self._variant

    @variant.setter
    def variant(self, variant: str) -> None:
        if variant not in self.task.variants:
            raise ModelLoadError(
                f'task {self.task.name!r} has no variant {variant!r} '
                f'(choose from {list(self.task.variants)})'
            )
        self._variant = variant

    def __call__(self, model: str, inputs: Array) -> Array:
        """Run ``model`` whole at the current variant (an ``Infer``: profiling, evaluation)."""
        for stage in self.stages[model, self._variant]:
            inputs = self.run(model, self._variant, inputs, stage)
        return inputs

    def run(self, model: str, variant: str, inputs: Array, stage: Stage) -> Array:
        return self._engine(model, variant, inputs.shape[0], stage).run(inputs)

    def loaded(self, model: str, variant: str, batch: int,
               stage: Stage) -> InferenceEngine | None:
        placement = self._lanes[stage.lane]
        return self._store.loaded(model, variant, batch=batch, device=placement.device,
                                  threads=placement.threads, lane=stage.lane, part=stage.part)

    def requests(self, inference: Inference) -> Generator[ModelRequest, Array, Array]:
        """Bind a pipeline's request to this task's current variant: one lane request per
        stage, each fed the previous stage's output; returns the model's output."""
        variant, data = self._variant, inference.inputs
        for stage in self.stages[inference.model, variant]:
            data = yield ModelRequest(self, inference.model, variant, data, stage)
        return data

    def drive(self, stages: DetectionStages) -> Generator[ModelRequest, Array, list[Detection]]:
        """A pipeline's stages as lane work: each of its inferences becomes this task's
        requests; returns the pipeline's detections."""
        try:
            inference = next(stages)
            while True:
                inference = stages.send((yield from self.requests(inference)))
        except StopIteration as done:
            detections: list[Detection] = done.value
            return detections

