"""The models one task infers with, at its current variant, on its lane's device."""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edge_perception.core.config import TaskConfig
from edge_perception.runtime.engine import InferenceEngine
from edge_perception.runtime.manifest import ModelLoadError
from edge_perception.tasks.pipelines import Array, Inference


class EngineSource(Protocol):
    """What :class:`TaskModels` needs from a model store (tvm_engine.ModelStore has it)."""

    def engine(self, model: str, variant: str, *, batch: int = 1, device: str = 'cpu',
               threads: int = 1, lane: str = 'main') -> InferenceEngine: ...

    def loaded(self, model: str, variant: str, *, batch: int, device: str, threads: int,
               lane: str) -> InferenceEngine | None: ...


@dataclass(frozen=True, eq=False)
class ModelRequest:
    """A pipeline's :class:`Inference` bound to a task's models at its current variant: the
    request a lane runs, alone or packed with requests of the same key (core.jobs.Request)."""

    models: TaskModels
    model: str
    variant: str
    inputs: Array

    @property
    def key(self) -> Hashable:
        return (self.model, self.variant, self.models.device, self.models.threads,
                self.models.task.lane)

    def batch_latency_ns(self, size: int) -> int | None:
        engine = self.models.loaded(self.model, self.variant, size)
        return None if engine is None else engine.latency_ns

    def run_together(self, others: Sequence[Any]) -> list[Any]:
        requests = [self, *others]
        inputs = np.concatenate([r.inputs for r in requests]) if others else self.inputs
        output = self.models.run(self.model, self.variant, inputs)
        bounds = np.cumsum([0, *(len(r.inputs) for r in requests)])
        return [output[start:end] for start, end in itertools.pairwise(bounds)]


class TaskModels:
    """Callable as a pipeline's ``infer``: routes (model, inputs) to the current variant.

    Switching ``variant`` is hot: the next call uses the other variant's module, which the
    store compiled or loaded at construction, so a switch never stalls a job.
    """

    def __init__(self, task: TaskConfig, store: EngineSource, *, device: str,
                 threads: int, batch_sizes: Sequence[int] = (1,)) -> None:
        self.task = task
        self._store = store
        self.device = device
        self.threads = threads
        self._variant = task.variant
        # Load every variant and batch size up front: switches and packing never compile.
        for variant in task.variants:
            for model in task.models:
                for batch in batch_sizes:
                    store.engine(model, variant, batch=batch, device=device, threads=threads,
                                 lane=task.lane)

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
        """Run ``model`` at the current variant (an ``Infer``: profiling, evaluation)."""
        return self.run(model, self._variant, inputs)

    def run(self, model: str, variant: str, inputs: Array) -> Array:
        engine = self._store.engine(model, variant, batch=inputs.shape[0], device=self.device,
                                    threads=self.threads, lane=self.task.lane)
        return engine.run(inputs)

    def loaded(self, model: str, variant: str, batch: int) -> InferenceEngine | None:
        return self._store.loaded(model, variant, batch=batch, device=self.device,
                                  threads=self.threads, lane=self.task.lane)

    def request(self, inference: Inference) -> ModelRequest:
        """Bind a pipeline's request to this task's current variant."""
        return ModelRequest(self, inference.model, self._variant, inference.inputs)
