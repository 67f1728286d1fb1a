"""The models one task infers with, at its current variant, on its lane's device."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge_perception.core.config import TaskConfig
from edge_perception.runtime.engine import InferenceEngine
from edge_perception.runtime.manifest import ModelLoadError


class EngineSource(Protocol):
    """What :class:`TaskModels` needs from a model store (tvm_engine.ModelStore has it)."""

    def engine(self, model: str, variant: str, *, batch: int = 1, device: str = 'cpu',
               threads: int = 1, lane: str = 'main') -> InferenceEngine: ...


class TaskModels:
    """Callable as a pipeline's ``infer``: routes (model, inputs) to the current variant.

    Switching ``variant`` is hot: the next call uses the other variant's module, which the
    store compiled or loaded at construction, so a switch never stalls a job.
    """

    def __init__(self, task: TaskConfig, store: EngineSource, *, device: str,
                 threads: int) -> None:
        self.task = task
        self._store = store
        self._device = device
        self._threads = threads
        self._variant = task.variant
        for variant in task.variants:  # load every variant up front: switches stay hot
            for model in task.models:
                store.engine(model, variant, device=device, threads=threads, lane=task.lane)

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

    def __call__(self, model: str, inputs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        batch = inputs.shape[0]
        engine = self._store.engine(model, self._variant, batch=batch, device=self._device,
                                    threads=self._threads, lane=self.task.lane)
        return engine.run(inputs)
