"""Skipping the convolution taps that read zero padding (skip_padding_taps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tvm
import tvm_ffi
from tvm import s_tir

from edge_perception.runtime.tvm_engine import (
    CompileTarget,
    ModelStore,
    _lowered,
    _scheduled,
    skip_padding_taps_in,
)


@pytest.fixture(scope='module')
def classifier_convolution(repo_root: Path) -> Any:
    """The sign classifier quarter's 4->8 convolution (padding 1, with bias and ReLU) as
    tuning sees it, unscheduled."""
    store = ModelStore.of(repo_root / 'model_zoo')
    target = tvm.target.Target(CompileTarget('cpu').spec())
    module = _lowered(store.static_onnx('sign_classifier', 'quarter', 1),
                      store.input_shape('sign_classifier', 1), target)
    return module['fused_conv2d1_add1_relu11'].with_attr('global_symbol', 'main')


def _guards(function: Any) -> list[Any]:
    found: list[Any] = []
    tvm_ffi.structural_walk(function.body, [(tvm.tirx.IfThenElse, found.append)])
    return found


def _names(expr: Any) -> set[str]:
    found: list[Any] = []
    tvm_ffi.structural_walk(expr, [(tvm.tirx.Var, found.append)])
    return {var.name for var in found}


def _run(function: Any, arguments: list[np.ndarray]) -> np.ndarray:
    built = tvm.compile(tvm.IRModule({'main': function}), target='llvm')
    tensors = [tvm.runtime.tensor(value) for value in arguments]
    built['main'](*tensors)
    return tensors[-1].numpy()


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


def _rows_outside_columns_inside(function: Any) -> Any:
    """A schedule whose loops run rows, kernel rows, kernel columns, input channels, then
    columns and output channels: a row bound is decided outside the channel reduction, a
    column bound only inside it."""
    schedule = s_tir.Schedule(function)
    convolution = schedule.get_sblock('conv2d_nhwc')
    n, y, x, c, ry, rx, rc = schedule.get_loops(convolution)
    schedule.reorder(n, y, ry, rx, rc, x, c)
    schedule.decompose_reduction(convolution, ry)
    return schedule.mod['main']


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


def test_the_detector_convolutions_of_tuned_builds_skip_padding_taps(repo_root: Path) -> None:
    store = ModelStore.of(repo_root / 'model_zoo')
    cpu = CompileTarget('cpu')
    target = tvm.target.Target(cpu.spec())
    databases = store.applied_databases('detector', 'quarter', batch=1, target=cpu)
    module = _scheduled(_lowered(store.static_onnx('detector', 'quarter', 1),
                                 store.input_shape('detector', 1), target), target, databases)
    guarded = [name.name_hint for name, function in module.functions_items()
               if isinstance(function, tvm.tirx.PrimFunc) and 'conv2d' in name.name_hint
               and _guards(skip_padding_taps_in(function))]
    # Which ones depends on the tuned tiles; the 3x3 ones only (1x1 ones have no padding).
    assert guarded
    assert all(_has_padding(module[name]) for name in guarded)


def _has_padding(function: Any) -> bool:
    return 'pad_temp' in function.script()
