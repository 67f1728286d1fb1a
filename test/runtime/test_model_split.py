"""Cutting ONNX graphs at single-tensor cuts: the right places, and exact chaining."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_perception.runtime.manifest import ModelLoadError
from edge_perception.runtime.model_split import (
    cut_tensors,
    shape_of,
    sub_model,
    with_static_input,
)


def skip_net() -> onnx.ModelProto:
    """x -conv-relu-> a -conv-relu-> b; a + b -> s -conv-> y (a residual block)."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.normal(size=(4, c, 3, 3)).astype(np.float32), f'w{i}')
               for i, c in enumerate((3, 4, 4))]
    conv = {'kernel_shape': [3, 3], 'pads': [1, 1, 1, 1]}
    nodes = [
        helper.make_node('Conv', ['x', 'w0'], ['c0'], **conv),
        helper.make_node('Relu', ['c0'], ['a']),
        helper.make_node('Conv', ['a', 'w1'], ['c1'], **conv),
        helper.make_node('Relu', ['c1'], ['b']),
        helper.make_node('Add', ['a', 'b'], ['s']),
        helper.make_node('Conv', ['s', 'w2'], ['y'], **conv),
    ]
    graph = helper.make_graph(
        nodes, 'skip', [helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N', 3, 8, 8])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, ['N', 4, 8, 8])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])


def run(model: onnx.ModelProto, inputs: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=['CPUExecutionProvider'])
    return np.asarray(session.run(None, {model.graph.input[0].name: inputs})[0])


def test_cuts_skip_live_branches_and_fused_activations() -> None:
    model = with_static_input(skip_net(), (2, 3, 8, 8))
    # c0 and c1 feed only a Relu (fused into the conv), b lives beside a: no cuts there.
    assert cut_tensors(model) == ['a', 's']
    assert shape_of(model, 's') == (2, 4, 8, 8)


def test_sub_models_chain_to_the_whole_models_output() -> None:
    model = with_static_input(skip_net(), (2, 3, 8, 8))
    inputs = np.random.default_rng(1).normal(size=(2, 3, 8, 8)).astype(np.float32)
    data = inputs
    for start, end in [('x', 'a'), ('a', 's'), ('s', 'y')]:
        data = run(sub_model(model, start, end), data)
    np.testing.assert_array_equal(data, run(model, inputs))


def test_a_tensor_that_is_no_cut_is_refused() -> None:
    model = with_static_input(skip_net(), (1, 3, 8, 8))
    with pytest.raises(ModelLoadError, match="'b' is not a cut point"):
        sub_model(model, 'b', 'y')


def test_input_rank_mismatch_is_named() -> None:
    with pytest.raises(ModelLoadError, match='model input has 4 dimensions, not 2'):
        with_static_input(skip_net(), (1, 3))
