"""Skipping the convolution taps that read zero padding (skip_padding_taps)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import tvm
import tvm_ffi
from tvm import s_tir

from edge_perception.runtime.manifest import Manifest
from edge_perception.runtime.tvm.engine import TvmEngine
from edge_perception.runtime.tvm.lowering import _scheduled, compile_onnx, lowered
from edge_perception.runtime.tvm.store import ModelStore
from edge_perception.runtime.tvm.target import CompileTarget
from edge_perception.runtime.tvm.tir_passes import SKIP_PADDING_TAPS, skip_padding_taps_in
from edge_perception.runtime.tvm.tuning.seeding import seed_database

from .test_tuning_space import _run


@pytest.fixture(scope='module')
def classifier_convolution(classifier_functions: dict[str, Any]) -> Any:
    """The sign classifier quarter's 4->8 convolution (padding 1, with bias and ReLU) as
    tuning sees it, unscheduled."""
    return classifier_functions['fused_conv2d1_add1_relu11']


def _guards(function: Any) -> list[Any]:
    found: list[Any] = []
    tvm_ffi.structural_walk(function.body, [(tvm.tirx.IfThenElse, found.append)])
    return found


def _names(expr: Any) -> set[str]:
    found: list[Any] = []
    tvm_ffi.structural_walk(expr, [(tvm.tirx.Var, found.append)])
    return {var.name for var in found}


def _arguments(function: Any) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [np.abs(rng.standard_normal([int(d) for d in buffer.shape])).astype('float32')
            for buffer in function.params]


def _padding_read_as_huge(function: Any) -> Any:
    """``function`` with its padding filled with 1e30 instead of zeros: with positive inputs
    and weights, every output that still reads the padding exceeds 1e20."""
    def huge_padding(store: Any) -> Any:
        value = store.value
        if (isinstance(value, tvm.ir.expr.Call)
                and value.op.same_as(tvm.ir.Op.get('prim.if_then_else'))):
            huge = tvm.tirx.FloatImm('float32', 1e30)
            value = tvm.tirx.if_then_else(value.args[0], value.args[1], huge)
            return tvm.tirx.BufferStore(store.buffer, value, store.indices)
        return store
    return function.with_body(
        tvm_ffi.structural_map(function.body, [(tvm.tirx.BufferStore, huge_padding)]))


def _rows_outside_columns_inside(function: Any, *, marked: bool = True) -> Any:
    """A schedule whose loops run rows, kernel rows, kernel columns, input channels, then
    columns and output channels: a row bound is decided outside the channel reduction, a
    column bound only inside it. ``marked``: the schedule asks for the taps skipped."""
    schedule = s_tir.Schedule(function)
    convolution = schedule.get_sblock('conv2d_nhwc')
    n, y, x, c, ry, rx, rc = schedule.get_loops(convolution)
    schedule.reorder(n, y, ry, rx, rc, x, c)
    schedule.decompose_reduction(convolution, ry)
    if marked:
        schedule.annotate(schedule.get_sblock('conv2d_nhwc_update'), SKIP_PADDING_TAPS, 1)
    return schedule.mod['main']


def test_a_schedule_that_does_not_ask_keeps_its_padding_taps(
        classifier_convolution: Any) -> None:
    scheduled = _rows_outside_columns_inside(classifier_convolution, marked=False)
    assert skip_padding_taps_in(scheduled).same_as(scheduled)


def test_a_bound_decided_outside_the_reduction_guards_it_one_decided_inside_does_not(
        classifier_convolution: Any) -> None:
    scheduled = _rows_outside_columns_inside(classifier_convolution)
    assert _guards(scheduled) == []
    guards = _guards(skip_padding_taps_in(scheduled))
    assert len(guards) == 1
    # Both row bounds (top and bottom) of the 16-row image, tested inside the kernel-row
    # loop; no column bound.
    assert _names(guards[0].condition) == {'yy', 'ry'}
    assert str(guards[0].condition) == (
        'T.int64(1) <= yy + ry and yy + ry < T.int64(17)')


def test_skipped_taps_are_the_padding_and_outputs_stay_identical(
        classifier_convolution: Any) -> None:
    scheduled = _rows_outside_columns_inside(classifier_convolution)
    guarded = skip_padding_taps_in(scheduled)
    arguments = _arguments(scheduled)
    np.testing.assert_array_equal(_run(guarded, arguments), _run(scheduled, arguments))
    # Guarded, the top and bottom rows read no padding; the left and right columns (whose
    # bound is decided inside the reduction) still do.
    read_padding = _run(_padding_read_as_huge(scheduled), arguments)[0] > 1e20
    still_read = _run(_padding_read_as_huge(guarded), arguments)[0] > 1e20
    border = np.ones_like(read_padding)
    border[1:-1, 1:-1] = False
    np.testing.assert_array_equal(read_padding, border)
    columns = np.zeros_like(still_read)
    columns[:, [0, -1]] = True
    np.testing.assert_array_equal(still_read, columns)


def test_seeding_gives_each_convolution_records_that_skip_its_padding_taps_timed_here(
        zoo_tuned_here: Path, tmp_path: Path) -> None:
    cpu = CompileTarget('cpu')
    store = ModelStore(Manifest.load(zoo_tuned_here), cache_dir=tmp_path / 'cache')
    database = store.tuning_database('sign_classifier', 'quarter', batch=1, target=cpu)
    model, shape = store.static_onnx('sign_classifier', 'quarter', 1), (1, 3, 32, 32)
    records = database / 'database_tuning_record.json'
    # The database as it was before schedules could skip the padding's taps.
    before = [line for line in records.read_text().splitlines()
              if SKIP_PADDING_TAPS not in line]
    records.write_text(''.join(f'{line}\n' for line in before))

    def seed() -> int:
        return seed_database(model, database, database, input_shape=shape, target=cpu,
                             per_function=2, on_measured=lambda *_: None)

    held = seed()
    added = records.read_text().splitlines()[len(before):]
    assert held == len(before) + len(added)
    assert added
    assert all(SKIP_PADDING_TAPS in line for line in added)
    workloads = [json.loads(line)[0] for line in added]
    assert max(Counter(workloads).values()) <= 2  # per_function, per convolution
    times_before = {json.dumps(json.loads(line)[1][1]) for line in before}
    assert not [line for line in added if json.dumps(json.loads(line)[1][1]) in times_before]
    assert seed() == held  # each convolution already has such records: nothing more

    # Builds follow each function's best record: guarded exactly where that one skips.
    best: dict[int, tuple[float, str]] = {}
    for line in records.read_text().splitlines():
        workload, (_, seconds, *_) = json.loads(line)
        mean = sum(seconds) / len(seconds)
        if workload not in best or mean < best[workload][0]:
            best[workload] = (mean, line)
    skipping = sum(SKIP_PADDING_TAPS in line for _, line in best.values())
    target = tvm.target.Target(cpu.spec())
    built = _scheduled(lowered(model, shape, target), target, [database])
    assert skipping == sum(bool(_guards(skip_padding_taps_in(function)))
                           for function in built.functions.values()
                           if isinstance(function, tvm.tirx.PrimFunc))
    library = tmp_path / 'skipping.so'
    compile_onnx(model, library, input_shape=shape, target=cpu, databases=[database])
    inputs = np.random.default_rng(5).uniform(0, 255, shape).astype(np.float32)
    reference = onnxruntime.InferenceSession(
        str(store.manifest.path('sign_classifier', 'quarter')), providers=['CPUExecutionProvider'])
    np.testing.assert_allclose(TvmEngine(library, device='cpu', input_shape=shape).run(inputs),
                               reference.run(None, {'input': inputs})[0], atol=2e-4, rtol=1e-3)
