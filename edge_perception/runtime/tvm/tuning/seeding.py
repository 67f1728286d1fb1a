"""Starting a database from another's records (another CPU's, or its own), timed here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import tvm

from edge_perception.runtime.tvm.database import (
    tuned_workloads,
    tuning_records,
)
from edge_perception.runtime.tvm.lowering import (
    lowered,
)
from edge_perception.runtime.tvm.target import (
    CompileTarget,
)
from edge_perception.runtime.tvm.tir_passes import (
    CONV_UPDATE,
    SKIP_PADDING_TAPS,
    inline_prologue,
    prologue_length,
    root_block_names,
    skip_padding_taps_in,
    workload_hash,
)
from edge_perception.runtime.tvm.tuning.ranking import spaced
from edge_perception.runtime.tvm.tuning.record_lines import RecordLines
from edge_perception.runtime.tvm.tuning.search import builder, runner

_log = logging.getLogger(__name__)


def seed_database(model: onnx.ModelProto, database: Path, source: Path, *,
                  input_shape: tuple[int, ...], target: CompileTarget, per_function: int,
                  on_measured: Callable[[int, int], None]) -> int:
    """Give each function that ``database`` has no records for ``per_function`` records of
    ``source`` (each function's best, at least 1 % apart, see :func:`spaced`), timed again
    here; seeded from itself, then give each convolution whose records all multiply its
    padding's zeros ``per_function`` of its best records again, skipping them (see
    :func:`skip_padding_taps_in`), timed here. Returns the records ``database`` then holds.

    ``source`` is a database tuned on another CPU of the same kind, or ``database`` itself.
    A function without records there that is a convolution with its input's preparation
    fused in (see :func:`fuse_input_prologue`) gets the convolution's own records, replayed
    after inlining the preparation. A schedule replays on any CPU of the architecture, but
    the best one differs between CPUs, hence the timing here.
    ``on_measured(done, total)``: after each batch of records was timed (progress bars).
    Measurements: docs/design/tvm.md."""
    from tvm.s_tir import meta_schedule as ms

    tvm_target = tvm.target.Target(target.spec())
    functions = [task.dispatched[0] for task in ms.relax_integration.extract_tasks(
        lowered(model, input_shape, tvm_target), tvm_target)]
    database.mkdir(parents=True, exist_ok=True)
    have = tuned_workloads(database) if tuning_records(database) else frozenset()
    missing = [function for function in functions if workload_hash(function) not in have]
    if missing:  # every tune run asks; the source's records need not be read otherwise
        chosen = _records_for_missing(model, missing, source, database,
                                      input_shape=input_shape, tvm_target=tvm_target,
                                      per_function=per_function)
        runs = _timed([(module, record.args_info) for _, record, module in chosen], target,
                      on_measured=on_measured)
        _commit(database, [(workload, record, seconds) for (workload, record, _), seconds
                           in zip(chosen, runs, strict=True)], tvm_target)
    if source != database:  # a new CPU: the other's records come marked or not already
        return tuning_records(database)
    twins = _padding_skip_twins(functions, database, tvm_target, per_function)
    runs = _timed([(module, record.args_info) for pair in twins for record, module in pair],
                  target, on_measured=on_measured)
    committed = []
    for ((original, _), (twin, _)), seconds, original_seconds in zip(
            twins, runs[1::2], runs[0::2], strict=True):
        if seconds and original_seconds:
            # Timed beside its original and put on the scale of the original's committed
            # time: the database's other records were timed in other runs, and this VM's
            # core speed drifts (267-280 GFLOP/s peak within a day).
            scale = float(np.mean(_floats(original.run_secs))) / float(np.mean(original_seconds))
            committed.append((twin.workload, twin, [t * scale for t in seconds]))
    _commit(database, committed, tvm_target)
    return tuning_records(database)


def _records_for_missing(model: onnx.ModelProto, missing: Sequence[Any], source: Path,
                         database: Path, *, input_shape: tuple[int, ...], tvm_target: Any,
                         per_function: int) -> list[tuple[Any, Any, Any]]:
    """(our workload, the record to time, the scheduled function) for each of ``missing``
    from ``source`` (see :func:`seed_database`)."""
    from tvm.s_tir import meta_schedule as ms

    theirs = RecordLines(source)
    ours = ms.database.JSONDatabase(work_dir=str(database))
    chosen = []
    alone = None  # the functions of the model lowered without the preparation fused in
    for function in missing:
        index, core = theirs.workload_index(function), None
        if index is not None and not theirs.best(index, 1):
            index = None  # a workload committed without a record measured
        if index is None and prologue_length(root_block_names(function)):
            if alone is None:
                alone = [task.dispatched[0] for task in ms.relax_integration.extract_tasks(
                    lowered(model, input_shape, tvm_target, prologue=False), tvm_target)]
            core = _convolution_alone(function, alone)
            index = None if core is None else theirs.workload_index(core)
        if index is None:
            continue
        workload = ours.commit_workload(function)
        for _, line in spaced(theirs.best(index, len(theirs.lines)), per_function):
            # A trace is read against the function it was tuned for.
            record = ms.database.TuningRecord.from_json(
                json.loads(theirs.lines[line])[1],
                workload if core is None else ms.database.Workload(core))
            schedule = tvm.s_tir.Schedule(function)
            if core is not None:
                inline_prologue(schedule)
            record.trace.apply_to_schedule(schedule, remove_postproc=False)
            if core is not None:  # the trace now starts with the inlining; input as fused
                record = ms.database.TuningRecord(
                    schedule.trace, workload, None, tvm_target,
                    [ms.arg_info.ArgInfo.from_prim_func(function['main'])[0],
                     *record.args_info[1:]])
            chosen.append((workload, record, schedule.mod))
    return chosen


def _padding_skip_twins(functions: Sequence[Any], database: Path, tvm_target: Any,
                        per_function: int) -> list[tuple[tuple[Any, Any], tuple[Any, Any]]]:
    """((record, scheduled function) as committed, (the same marked to skip its padding's
    taps, scheduled)) for the ``per_function`` best records (1 % apart) of each of
    ``functions`` whose records in ``database`` are all unmarked, where marking guards
    anything (see :func:`skip_padding_taps_in`)."""
    from tvm.s_tir import meta_schedule as ms

    if not tuning_records(database):
        return []
    ours = RecordLines(database)
    twins = []
    for function in functions:
        index = ours.workload_index(function)
        if index is None or any(SKIP_PADDING_TAPS in line for line, (workload_index, _) in
                                zip(ours.lines, ours.timed, strict=True)
                                if workload_index == index):
            continue
        workload = ms.database.Workload(function)
        for _, line in spaced(ours.best(index, len(ours.lines)), per_function):
            original = ms.database.TuningRecord.from_json(json.loads(ours.lines[line])[1],
                                                          workload)
            schedule = tvm.s_tir.Schedule(function)
            original.trace.apply_to_schedule(schedule, remove_postproc=False)
            unmarked = schedule.mod
            try:
                update = schedule.get_sblock(CONV_UPDATE)
            except tvm.s_tir.ScheduleError:
                break  # no convolution, or one whose reduction was not split from its init
            schedule.annotate(update, SKIP_PADDING_TAPS, 1)
            if skip_padding_taps_in(schedule.mod['main']).same_as(schedule.mod['main']):
                continue  # no bound decided outside a channel reduction: the same code
            twin = ms.database.TuningRecord(schedule.trace, workload, None, tvm_target,
                                            original.args_info)
            twins.append(((original, unmarked), (twin, schedule.mod)))
    return twins


def _floats(values: Any) -> list[float]:
    return [float(value) for value in values]


def _timed(candidates: Sequence[tuple[Any, Any]], target: CompileTarget, *,
           on_measured: Callable[[int, int], None]) -> list[list[float] | None]:
    """The run times here (seconds) of each (scheduled function, its record's argument
    info); None where it failed to build or run."""
    from tvm.s_tir import meta_schedule as ms

    tvm_target = tvm.target.Target(target.spec())
    seconds: list[list[float] | None] = []
    batch = 16  # one pool of build workers a batch: its start costs seconds
    for first in range(0, len(candidates), batch):
        part = candidates[first:first + batch]
        built = builder(len(part)).build(
            [ms.builder.BuilderInput(module, tvm_target) for module, _ in part])
        runs = iter(runner(target).run([
            ms.runner.RunnerInput(result.artifact_path, device_type=target.device,
                                  args_info=args_info)
            for result, (_, args_info) in zip(built, part, strict=True)
            if not result.error_msg]))
        for result in built:
            run = None if result.error_msg else next(runs).result()
            seconds.append(None if run is None or run.error_msg else _floats(run.run_secs))
        on_measured(first + len(part), len(candidates))
    return seconds


def _commit(database: Path, timed: Sequence[tuple[Any, Any, list[float] | None]],
            tvm_target: Any) -> None:
    """Commit each (workload, record, seconds) that ran to ``database`` with those times."""
    from tvm.s_tir import meta_schedule as ms

    ours = ms.database.JSONDatabase(work_dir=str(database))
    failed = 0
    for workload, record, seconds in timed:
        if seconds is None:
            failed += 1
            continue
        ours.commit_tuning_record(ms.database.TuningRecord(
            record.trace, ours.commit_workload(workload.mod), seconds, tvm_target,
            record.args_info))
    if failed:
        _log.warning('seeding %s: %d records failed to build or run here', database.name,
                     failed)


def _convolution_alone(fused: Any, alone: Sequence[Any]) -> Any | None:
    """Which of ``alone`` is ``fused`` without its input's preparation: the same blocks
    after it, the same weights and output (the data input differs); None if none is."""
    from tvm.s_tir import meta_schedule as ms

    names = root_block_names(fused)
    rest = names[prologue_length(names):]
    params = [str(info) for info in ms.arg_info.ArgInfo.from_prim_func(fused['main'])[1:]]
    for function in alone:
        if (root_block_names(function) == rest and params ==
                [str(info) for info in ms.arg_info.ArgInfo.from_prim_func(function['main'])[1:]]):
            return function
    return None
