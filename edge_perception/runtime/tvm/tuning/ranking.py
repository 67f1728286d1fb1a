"""Choosing among the tuner's best records by timing them inside the whole model.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import onnx
import tvm

from edge_perception.runtime.tvm.database import (
    tuned_workloads,
)
from edge_perception.runtime.tvm.lowering import (
    compile_onnx,
    lowered,
)
from edge_perception.runtime.tvm.target import (
    CompileTarget,
)
from edge_perception.runtime.tvm.tir_passes import (
    prologue_length,
    root_block_names,
    workload_hash,
)
from edge_perception.runtime.tvm.tuning.choices import choose_loops, choose_prologue
from edge_perception.runtime.tvm.tuning.record_lines import RecordLines
from edge_perception.runtime.tvm.tuning.task_time import (
    task_seconds,
)
from edge_perception.runtime.tvm.tuning.timing import seconds_taking_turns


def _prologue_workloads(tasks: Sequence[Any]) -> set[str]:
    """The workload hashes of the tuning ``tasks`` that are a convolution with its input's
    preparation fused in."""
    return {workload_hash(task.dispatched[0]) for task in tasks
            if prologue_length(root_block_names(task.dispatched[0]))}



def rank_in_model(model: onnx.ModelProto, database: Path, *, input_shape: tuple[int, ...],
                  target: CompileTarget, candidates: int, min_share: float = 0.05,
                  tuned_from: int | None = None,
                  on_build: Callable[[], None] = lambda: None) -> list[str]:
    """Keep, for each function that costs at least ``min_share`` of the model, the record of
    its ``candidates`` best in ``database`` (the tuner's ranking, at least 1 % apart) with
    which the whole model runs fastest: records the tuner ranked above it are dropped.
    ``tuned_from``: the records the database held before a tuning run; each function's best
    of those is a candidate too. Returns a line per function.

    The tuner times a function alone; in the model it finds other caches and inputs, and its
    second-best record can be the model's fastest. Each candidate is timed as the function's
    own calls inside the model (see :func:`seconds_taking_turns`), since whole calls moved
    more between candidates than the candidates differ. Measurements: docs/design/tvm.md."""

    from tvm.s_tir import meta_schedule as ms

    tvm_target = tvm.target.Target(target.spec())
    tasks = ms.relax_integration.extract_tasks(lowered(model, input_shape, tvm_target),
                                               tvm_target)
    tuned = ms.database.JSONDatabase(work_dir=str(database))
    seconds = {task.task_name: task_seconds(tuned, task) for task in tasks}
    heavy = [task for task in sorted(tasks, key=lambda t: -seconds[t.task_name])
             if seconds[task.task_name] >= min_share * sum(seconds.values())]
    # Tuning only appends lines and ranking drops some: the earlier best, by content.
    before = RecordLines(database)
    previous = ({} if tuned_from is None else
                {index: before.lines[number]
                 for index, number in before.best_numbers(tuned_from).items()})
    report = []
    for task in heavy:
        records = RecordLines(database)
        workload = records.workload_index(task.dispatched[0])
        if workload is None:
            continue
        ranked = records.best(workload, len(records.lines))
        # The function's best record from before the run, by its line in this file.
        earlier = {line for _, line in ranked if records.lines[line] == previous.get(workload)}
        best = sorted({*spaced(ranked, candidates),
                       *[entry for entry in ranked if entry[1] in earlier]})
        if len(best) < 2:
            continue
        with tempfile.TemporaryDirectory(prefix='rank-') as scratch:
            libraries = []
            for rank, (_, line) in enumerate(best):
                trial = Path(scratch) / str(rank)
                records.write_trial(trial, workload, line)
                libraries.append(trial / 'model.so')
                # The bytecode VM: it reports each kernel call to an instrument.
                compile_onnx(model, libraries[-1], input_shape=input_shape, target=target,
                             databases=[trial], exec_mode='bytecode')
                on_build()
            model_seconds = seconds_taking_turns(libraries, input_shape, target,
                                                  function=task.task_name)
        winner = min(range(len(best)), key=model_seconds.__getitem__)
        # Keep the tuner's choice unless another beats it by more than the timing noise.
        if model_seconds[winner] > model_seconds[0] * 0.995:
            winner = 0
        records.write(database, drop={number for _, number in
                                      ranked[:ranked.index(best[winner])]})
        report.append(f'{task.task_name}: ' + ', '.join(
            f'{tuner * 1e6:.1f} us alone -> {model * 1e6:.1f} us in the model'
            + (' (before the run)' if line in earlier else '')
            + (' (kept)' if rank == winner else '')
            for rank, ((tuner, line), model) in enumerate(zip(best, model_seconds,
                                                              strict=True))))
    if target.device == 'cpu' and _prologue_workloads(tasks) & tuned_workloads(database):
        report.append(choose_prologue(model, database, input_shape=input_shape, target=target,
                                      on_build=on_build))
    if target.serial_capable():
        report.append(choose_loops(model, database, input_shape=input_shape, target=target,
                                   on_build=on_build))
    return report


def spaced(ranked: list[tuple[float, int]], count: int,
            apart: float = 1.01) -> list[tuple[float, int]]:
    """The first ``count`` of ``ranked`` (seconds, line) that are each at least ``apart``
    times the seconds of the one before."""
    chosen: list[tuple[float, int]] = []
    for seconds, line in ranked:
        if len(chosen) < count and (not chosen or seconds >= chosen[-1][0] * apart):
            chosen.append((seconds, line))
    return chosen

