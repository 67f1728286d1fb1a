"""A padding that transposes its input is written in the input's order
(padding_in_input_order_in)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tvm
from tvm import s_tir

from edge_perception.runtime.tvm.tir_passes import (
    _realizes,
    inline_prologue,
    padding_in_input_order_in,
)

from .test_tuning_space import _random_arguments, _run


@pytest.fixture(scope='module')
def classifier_stem(classifier_functions: dict[str, Any]) -> Any:
    """The sign classifier quarter's first convolution with the input's preparation inlined
    into its padding, a pass of its own at the root: the NCHW input (1, 3, 32, 32) read into
    a channels-last padded buffer (1, 34, 34, 3)."""
    schedule = s_tir.Schedule(
        classifier_functions['fused_multiply_subtract_transpose_conv2d_add_relu1'])
    inline_prologue(schedule)
    return schedule.mod['main']


def _padding(function: Any) -> tuple[list[int], list[Any]]:
    """The padded buffer's shape and the loops around the block filling it."""
    [buffer] = [b for b in function.body.block.alloc_buffers if b.name == 'pad_temp']
    [path] = [path for realize, path in _realizes(function)
              if realize.block.name_hint == 'pad_temp']
    return [int(extent) for extent in buffer.shape], path


def test_a_transposing_padding_is_written_in_its_inputs_order(classifier_stem: Any) -> None:
    assert _padding(classifier_stem)[0] == [1, 34, 34, 3]
    rewritten = padding_in_input_order_in(classifier_stem)
    shape, loops = _padding(rewritten)
    assert shape == [1, 3, 34, 34]  # channel-major, as the input
    assert [int(loop.extent) for loop in loops] == [3 * 34, 34]  # a contiguous row a step
    assert loops[-1].kind == tvm.tirx.ForKind.VECTORIZED
    arguments = _random_arguments(classifier_stem)
    np.testing.assert_array_equal(_run(rewritten, arguments), _run(classifier_stem, arguments))


def test_a_padding_in_its_inputs_order_or_inside_tiles_is_left_alone(
        classifier_stem: Any) -> None:
    once = padding_in_input_order_in(classifier_stem)
    assert padding_in_input_order_in(once).same_as(once)
    schedule = s_tir.Schedule(classifier_stem)
    convolution = schedule.get_sblock('conv2d_nhwc')
    schedule.compute_at(schedule.get_sblock('pad_temp'), schedule.get_loops(convolution)[1])
    tiled = schedule.mod['main']  # each row's padded input gathered where it is read
    assert padding_in_input_order_in(tiled).same_as(tiled)
