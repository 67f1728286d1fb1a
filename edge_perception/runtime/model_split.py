"""Splitting an ONNX model into consecutive sub-models at single-tensor cuts.

A cut is a place in the (topologically ordered) graph where exactly one computed tensor is
live: everything before it feeds the rest only through that tensor. Sub-models between cuts
chain exactly (stage k's output is stage k+1's input), so a partitioned model computes
what the whole one does. Constants and initialisers are not live tensors: each stage gets
its own copy of those it reads. A tensor read only by an elementwise operator is no cut: TVM
fuses that operator into the one before it, and a cut there would cost the fusion.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx
import onnx.shape_inference
import onnx.utils

from edge_perception.runtime.manifest import ModelLoadError

# A sub-model, named by its input and output tensors.
Part = tuple[str, str]

_FUSED_INTO_PRODUCER = frozenset({
    'Add', 'BatchNormalization', 'Clip', 'Div', 'LeakyRelu', 'Mul', 'Relu', 'Sigmoid', 'Sub',
    'Tanh',
})


def with_static_input(model: onnx.ModelProto, input_shape: Sequence[int]) -> onnx.ModelProto:
    """A copy of ``model`` with its input fixed to ``input_shape`` and every tensor's shape
    inferred (the extractor needs the shapes of cut tensors)."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    dims = fixed.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != len(input_shape):
        raise ModelLoadError(f'model input has {len(dims)} dimensions, not {len(input_shape)}')
    for dim, size in zip(dims, input_shape, strict=True):
        dim.Clear()
        dim.dim_value = int(size)
    return onnx.shape_inference.infer_shapes(fixed, strict_mode=True)


def cut_tensors(model: onnx.ModelProto) -> list[str]:
    """Names of the tensors at which ``model`` can be cut, in graph order (the graph's own
    input and output are not cuts)."""
    graph = model.graph
    free = {init.name for init in graph.initializer}
    free |= {out for node in graph.node if node.op_type == 'Constant' for out in node.output}
    outputs = {out.name for out in graph.output}
    last_use: dict[str, int] = {}
    consumers: dict[str, list[str]] = {}
    for index, node in enumerate(graph.node):
        for name in node.input:
            if name and name not in free:
                last_use[name] = index
                consumers.setdefault(name, []).append(node.op_type)
    fused = {name for name, ops in consumers.items()
             if len(ops) == 1 and ops[0] in _FUSED_INTO_PRODUCER}
    cuts: list[str] = []
    live: set[str] = {graph.input[0].name}
    for index, node in enumerate(graph.node):
        live |= {out for out in node.output if out not in free}
        live = {name for name in live if last_use.get(name, -1) > index or name in outputs}
        if len(live) == 1 and not live & (outputs | fused) and node.op_type != 'Constant':
            cuts.extend(live - set(cuts))
    return cuts


def shape_of(model: onnx.ModelProto, tensor: str) -> tuple[int, ...]:
    """The static shape of ``tensor`` in a shape-inferred model."""
    for info in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        if info.name == tensor:
            return tuple(d.dim_value for d in info.type.tensor_type.shape.dim)
    raise ModelLoadError(f'no shape recorded for tensor {tensor!r}')


def sub_model(model: onnx.ModelProto, start: str, end: str) -> onnx.ModelProto:
    """The part of a shape-inferred ``model`` from tensor ``start`` to tensor ``end``."""
    known = {model.graph.input[0].name, *cut_tensors(model), model.graph.output[0].name}
    for name in (start, end):
        if name not in known:
            raise ModelLoadError(f'{name!r} is not a cut point of the model')
    part = onnx.utils.Extractor(model).extract_model([start], [end])
    onnx.checker.check_model(part)
    return part
