"""Tuning within a wall-clock budget (``tune --budget 30m``), where the time to gain is
largest.

Each round gives ``round_trials`` trials to the model variant whose TVM build is slowest
against onnxruntime (the engine it runs on until tuned), spread over the functions of it
with the most time left to gain (``focus``: one per ``TRIALS_PER_FUNCTION``), rebuilds it
with the new records and times it again. Without focus, every MetaSchedule run first
visits a model's functions in the same order, four candidates each: short rounds would keep
tuning the first functions of a large model and never reach the rest. Records accumulate
in the variant's database, so a later run resumes.
The first round always runs; another starts only while the budget holds one more round
as long as the last one took.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edge_perception.runtime.engine import median_latency_ns
from edge_perception.runtime.onnxruntime_engine import OnnxRuntimeEngine
from edge_perception.runtime.tvm.database import write_measured
from edge_perception.runtime.tvm.engine import TvmEngine
from edge_perception.runtime.tvm.store import ModelStore
from edge_perception.runtime.tvm.target import CompileTarget
from edge_perception.runtime.tvm.tuning.variants import tune_variant

TRIALS_PER_FUNCTION = 8
TIMING_RUNS = 3  # a median of 3: an untuned 640x640 YOLO takes seconds a run


@dataclass
class BudgetJob:
    """One model variant: its TVM time now, at the start, and onnxruntime's."""

    model: str
    variant: str
    start_ns: int = 0
    tvm_ns: int = 0
    onnxruntime_ns: int = 0
    trials: int = 0

    @property
    def gap_ns(self) -> int:
        """How much slower TVM runs it than onnxruntime (what tuning can win back first)."""
        return self.tvm_ns - self.onnxruntime_ns

    def line(self) -> str:
        return (f'{self.model}/{self.variant}: TVM {self.start_ns / 1e6:.3g} -> '
                f'{self.tvm_ns / 1e6:.3g} ms after {self.trials} trials; onnxruntime '
                f'{self.onnxruntime_ns / 1e6:.3g} ms ({self.tvm_ns / self.onnxruntime_ns:.2f}x)')


def tvm_latency_ns(store: ModelStore, model: str, variant: str, target: CompileTarget) -> int:
    """Median time of the variant built with its database as it is now."""
    library = store.build(model, variant, batch=1, target=target)
    engine = TvmEngine(library, device=target.device, input_shape=store.input_shape(model, 1),
                       threads=target.num_cores)
    return median_latency_ns(engine, runs=TIMING_RUNS)


def onnxruntime_latency_ns(store: ModelStore, model: str, variant: str,
                           target: CompileTarget) -> int:
    engine = OnnxRuntimeEngine(store.static_onnx(model, variant, 1), name=f'{model}/{variant}',
                               input_shape=store.input_shape(model, 1), device=target.device,
                               threads=target.num_cores)
    return median_latency_ns(engine, runs=TIMING_RUNS)


def tune_within(store: ModelStore, jobs: Sequence[tuple[str, str]], *, target: CompileTarget,
                budget_s: float, round_trials: int, cost_model: str,
                on_round: Callable[[BudgetJob, float], None],
                clock: Callable[[], float] = time.monotonic) -> list[BudgetJob]:
    """Tune ``jobs`` (model, variant) for at most about ``budget_s`` seconds; ``on_round``
    hears after each timing or round which job moved and the seconds spent so far."""
    started = clock()
    timed: list[BudgetJob] = []
    for model, variant in jobs:
        job = BudgetJob(model, variant)
        job.onnxruntime_ns = onnxruntime_latency_ns(store, model, variant, target)
        job.start_ns = job.tvm_ns = tvm_latency_ns(store, model, variant, target)
        timed.append(job)
        on_round(job, clock() - started)
    last_round_s, rounds = 0.0, 0
    while timed and (not rounds or clock() - started + last_round_s <= budget_s):
        rounds += 1
        round_start = clock()
        job = max(timed, key=lambda j: j.gap_ns)
        tune_variant(store, job.model, job.variant, batch=1, target=target,
                     trials=round_trials, on_trials=lambda n: None, cost_model=cost_model,
                     focus=max(1, round_trials // TRIALS_PER_FUNCTION))
        job.trials += round_trials
        job.tvm_ns = tvm_latency_ns(store, job.model, job.variant, target)
        last_round_s = clock() - round_start
        on_round(job, clock() - started)
    for job in timed:
        write_measured(store.tuning_database(job.model, job.variant, batch=1, target=target),
                       tvm_ns=job.tvm_ns, onnxruntime_ns=job.onnxruntime_ns)
    return timed
