"""MetaSchedule search: trials for a model's functions, recorded in its database.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import onnx
import tvm

from edge_perception.runtime.tvm.database import (
    tuning_records,
)
from edge_perception.runtime.tvm.lowering import (
    lowered,
)
from edge_perception.runtime.tvm.target import (
    CompileTarget,
)
from edge_perception.runtime.tvm.tir_passes import (
    after_scheduling,
)
from edge_perception.runtime.tvm.tuning.design_space import cpu_design_space
from edge_perception.runtime.tvm.tuning.task_time import (
    task_headroom,
)

_log = logging.getLogger(__name__)


def tune_onnx(model: onnx.ModelProto, database: Path, *, input_shape: tuple[int, ...],
              target: CompileTarget, trials: int, on_trials: Callable[[int], None],
              focus: int | None = None, functions: Sequence[str] = (),
              cost_model: str = 'xgb') -> int:
    """MetaSchedule-tune the TIR functions; records accumulate in ``database`` (resumable).

    ``cost_model``: 'xgb' (MetaSchedule's learned model; needs xgboost) or 'random' (every
    candidate is still measured; the search is only less directed).
    ``focus``: only the ``focus`` functions that could lose the most time per inference (see
    :func:`task_headroom`; a later run spends its whole budget there, not evenly over every
    small task). ``functions``: only these, by name (where a profile, not the tuner's
    estimate, says the time is lost); ValueError names the model's functions if one is not.
    ``on_trials(n)`` is called after each batch of ``n`` measured trials (progress bars).
    Returns the number of tuning records the database then holds.
    """
    from tvm.ir.utils import derived_object
    from tvm.s_tir import meta_schedule as ms

    warned: list[bool] = []  # set once the first build error was logged

    @derived_object
    class Progress(ms.measure_callback.PyMeasureCallback):  # type: ignore[misc]
        def apply(self, task_scheduler: Any, task_id: int, measure_candidates: list[Any],
                  builder_results: list[Any], runner_results: list[Any]) -> None:
            failed = [str(r.error_msg) for r in builder_results if r.error_msg]
            if failed and not warned:  # MetaSchedule only counts them: say why, once
                _log.warning('tuning: %d of %d candidates failed to build; first error: %s',
                             len(failed), len(builder_results), failed[0].strip()[-500:])
                warned.append(True)
            on_trials(len(runner_results))

    tvm_target = tvm.target.Target(target.spec())
    mod = lowered(model, input_shape, tvm_target)
    database.mkdir(parents=True, exist_ok=True)
    extracted = ms.relax_integration.extract_tasks(mod, tvm_target)
    chosen = list(functions) or None
    unknown = set(functions) - {task.task_name for task in extracted}
    if unknown:
        raise ValueError(f'no function {", ".join(sorted(unknown))} to tune; the model has '
                         + ', '.join(sorted(task.task_name for task in extracted)))
    if focus is not None:
        headroom = task_headroom(ms.database.JSONDatabase(work_dir=str(database)), extracted)
        chosen = sorted(headroom, key=headroom.__getitem__, reverse=True)[:focus]
    tasks = len(chosen) if chosen is not None else len(extracted)
    # The first round visits every task once with ``per_iter`` candidates: keep it within the
    # budget, or the last tasks would get no trial at all and stay untuned.
    share = max(1, trials // max(tasks, 1))
    per_iter = max(4, min(16, share))
    with tvm_target:
        ms.relax_integration.tune_relax(
            mod, params={}, target=tvm_target, work_dir=str(database),
            max_trials_global=trials, max_trials_per_task=max(per_iter, share),
            # Seeded by the records so far: reproducible, yet a rerun does not replay the
            # previous run's random choices.
            num_trials_per_iter=per_iter, seed=tuning_records(database), op_names=chosen,
            builder=builder(per_iter),
            # On CPUs, also schedules with each convolution's epilogue inside its tiles.
            space=cpu_design_space(target.num_cores) if target.device == 'cpu'
            else 'post-order-apply',
            measure_callbacks=[*ms.MeasureCallback.create('default'), Progress()],
            runner=runner(target), cost_model=cost_model,
        )
    return tuning_records(database)


def builder(candidates: int) -> Any:
    """MetaSchedule's builder for batches of ``candidates``."""
    from tvm.s_tir import meta_schedule as ms

    # The builder starts a fresh pool of worker processes for every batch, each importing
    # TVM: with one worker per core on a 16-core GPU host, the start alone outran the default
    # 30 s timeout and every CUDA candidate "failed to build". One worker per candidate.
    return ms.builder.LocalBuilder(max_workers=min(candidates, os.cpu_count() or 1),
                                   timeout_sec=120.0, f_build=_build_candidate)


def _build_candidate(mod: Any, target: Any, params: Any) -> Any:
    """MetaSchedule's default build of a candidate, after what our builds do to scheduled
    functions (see :func:`after_scheduling`): candidates are timed as they will run."""
    from tvm.s_tir.meta_schedule.builder.local_builder import default_build

    return default_build(after_scheduling(mod), target, params)


def runner(target: CompileTarget) -> Any:
    """MetaSchedule's runner, timing candidates on the target's thread count."""
    from tvm.s_tir import meta_schedule as ms

    return ms.runner.LocalRunner(
        evaluator_config=ms.runner.EvaluatorConfig(number=5, repeat=3, min_repeat_ms=20,
                                                   enable_cpu_cache_flush=False),
        initializer=functools.partial(_measure_on_threads, target.num_cores))



def _measure_on_threads(count: int) -> None:
    """Runs first in each MetaSchedule measuring process: candidates are timed on the lane's
    thread count, not on the TVM_NUM_THREADS the process inherits (all usable CPUs, see
    :func:`_bound_tvm_threads`): a 1-core target's candidates were otherwise picked for two
    threads."""
    os.environ['TVM_NUM_THREADS'] = str(count)
