"""Which engine runs each model: TVM where this machine has tuning records for it,
onnxruntime otherwise (``engine: auto``), or what a task's config names. A build that
``tune --budget`` last timed slower than onnxruntime stays on onnxruntime.

An untuned TVM build of a model it has never seen runs up to ~90x slower than onnxruntime
(a YOLOv8 at 640x640: 17.6 s against 198 ms on a 2-core Xeon), so a new model starts on
onnxruntime and moves to TVM once ``edge-perception tune`` gave it records here.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from edge_perception.runtime.engine import InferenceEngine
from edge_perception.runtime.model_split import Part, sub_model
from edge_perception.runtime.onnxruntime_engine import OnnxRuntimeEngine
from edge_perception.runtime.tvm.database import measured_against_onnxruntime
from edge_perception.runtime.tvm.store import ModelStore
from edge_perception.runtime.tvm.target import CompileTarget
from edge_perception.tasks.model_spec import ModelSpec

TVM, ONNXRUNTIME, AUTO = 'tvm', 'onnxruntime', 'auto'


class Log(Protocol):
    def warning(self, message: str) -> object: ...


def tune_command(model: str, variant: str, device: str, threads: int) -> str:
    return (f'edge-perception tune --models {model} --variants {variant} --device {device}'
            + (f' --threads {threads}' if threads != 1 else '') + ' --budget 30m')


class ModelEngines:
    """The engines of a store's models (an ``EngineSource`` for TaskModels).

    ``engines``: model -> 'tvm' | 'onnxruntime' | 'auto' (absent: auto). ``chosen`` records
    what each (model, variant, device) runs on; auto's onnxruntime choices are logged once
    with the command that tunes the model."""

    def __init__(self, store: ModelStore, engines: Mapping[str, str], *, log: Log) -> None:
        self.store = store
        self.manifest = store.manifest
        self._engines = dict(engines)
        self._log = log
        self._onnxruntime: dict[tuple[str, str, int, str, int, str, Part | None],
                                OnnxRuntimeEngine] = {}
        self._lock = threading.Lock()
        self.chosen: dict[tuple[str, str, str], str] = {}
        self.untuned: dict[tuple[str, str, str], str] = {}  # -> the command that tunes it

    def spec(self, model: str) -> ModelSpec:
        return self.manifest.spec(model)

    def kind(self, model: str, variant: str, *, device: str = 'cpu', threads: int = 1) -> str:
        """The engine that runs ``model``/``variant`` on ``device``."""
        key = (model, variant, device)
        if key not in self.chosen:
            wanted = self._engines.get(model, AUTO)
            if wanted == AUTO:
                target = CompileTarget(device=device, num_cores=threads)
                tuned = self.store.is_tuned(model, variant,
                                            batch=self.store.compiled_batch(1, device),
                                            target=target)
                wanted = TVM if tuned else ONNXRUNTIME
                slower = self._slower_when_tuned(model, variant, target) if tuned else None
                if slower is not None:
                    wanted = ONNXRUNTIME
                    self._log.warning(slower)
                if not tuned:
                    command = tune_command(model, variant, device, threads)
                    self.untuned[key] = command
                    self._log.warning(
                        f'{model}/{variant} has no tuning records for {target.tag()}: it runs '
                        f'on onnxruntime until tuned (`{command}`)')
            self.chosen[key] = wanted
        return self.chosen[key]

    def _slower_when_tuned(self, model: str, variant: str, target: CompileTarget) -> str | None:
        """Why a tuned build stays unused: ``tune --budget`` timed it slower than
        onnxruntime on this machine (a large model needs hours); None otherwise."""
        timed = measured_against_onnxruntime(self.store.tuning_database(
            model, variant, batch=self.store.compiled_batch(1, target.device), target=target))
        if timed is None or timed[0] <= timed[1]:
            return None
        return (f'{model}/{variant}: its tuned TVM build ran {timed[0]:.3g} ms against '
                f"onnxruntime's {timed[1]:.3g} ms here: it stays on onnxruntime (tune longer: "
                f'`{tune_command(model, variant, target.device, target.num_cores)}`)')

    def engine(self, model: str, variant: str, *, batch: int = 1, device: str = 'cpu',
               threads: int = 1, lane: str = 'main', part: Part | None = None
               ) -> InferenceEngine:
        if self.kind(model, variant, device=device, threads=threads) == TVM:
            return self.store.engine(model, variant, batch=batch, device=device,
                                     threads=threads, lane=lane, part=part)
        key = (model, variant, batch, device, threads, lane, part)
        with self._lock:
            if key not in self._onnxruntime:
                graph = self.store.static_onnx(model, variant, batch)
                if part is not None:
                    graph = sub_model(graph, *part)
                engine = OnnxRuntimeEngine(
                    graph, name=f'{model}/{variant}', device=device, threads=threads,
                    input_shape=self.store.part_input_shape(model, variant, batch, part))
                for _ in range(3):  # warm-up, and a first latency estimate, as TVM's
                    engine.run(np.zeros(engine.input_shape, np.float32))
                self._onnxruntime[key] = engine
            return self._onnxruntime[key]

    def loaded(self, model: str, variant: str, *, batch: int, device: str, threads: int,
               lane: str, part: Part | None = None) -> InferenceEngine | None:
        if self.chosen.get((model, variant, device)) == TVM:
            return self.store.loaded(model, variant, batch=batch, device=device,
                                     threads=threads, lane=lane, part=part)
        with self._lock:
            return self._onnxruntime.get((model, variant, batch, device, threads, lane, part))

    def cut_points(self, model: str, variant: str) -> list[str]:
        return self.store.cut_points(model, variant)

    def parts(self, model: str, variant: str, cuts: Sequence[str]) -> list[Part]:
        return self.store.parts(model, variant, cuts)
