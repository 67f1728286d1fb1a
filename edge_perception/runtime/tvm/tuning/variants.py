"""Tuning one model variant of a store: its verified ONNX file, its database, its shape."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from edge_perception.runtime.tvm.store import ModelStore
from edge_perception.runtime.tvm.target import CompileTarget
from edge_perception.runtime.tvm.tuning.ranking import rank_in_model
from edge_perception.runtime.tvm.tuning.search import tune_onnx
from edge_perception.runtime.tvm.tuning.seeding import seed_database


def tune_variant(store: ModelStore, model: str, variant: str, *, batch: int,
                 target: CompileTarget, trials: int, on_trials: Callable[[int], None],
                 focus: int | None = None, functions: Sequence[str] = (),
                 cost_model: str = 'xgb') -> int:
    """Add ``trials`` MetaSchedule trials to the committed database; returns its records."""
    return tune_onnx(store.verified_onnx(model, variant),
                     store.tuning_database(model, variant, batch=batch, target=target),
                     input_shape=store.input_shape(model, batch), target=target,
                     trials=trials, on_trials=on_trials, focus=focus, functions=functions,
                     cost_model=cost_model)


def seed_variant(store: ModelStore, model: str, variant: str, *, batch: int,
                 target: CompileTarget, source: Path, per_function: int,
                 on_measured: Callable[[int, int], None]) -> int:
    """Start this target's database from ``source`` (see :func:`seed_database`)."""
    return seed_database(store.verified_onnx(model, variant),
                         store.tuning_database(model, variant, batch=batch, target=target),
                         source, input_shape=store.input_shape(model, batch),
                         target=target, per_function=per_function, on_measured=on_measured)


def rank_variant(store: ModelStore, model: str, variant: str, *, batch: int,
                 target: CompileTarget, candidates: int, on_build: Callable[[], None],
                 tuned_from: int | None = None) -> list[str]:
    """Keep the records with which the whole model runs fastest (see :func:`rank_in_model`)."""
    return rank_in_model(store.verified_onnx(model, variant),
                         store.tuning_database(model, variant, batch=batch, target=target),
                         input_shape=store.input_shape(model, batch), target=target,
                         candidates=candidates, on_build=on_build, tuned_from=tuned_from)
