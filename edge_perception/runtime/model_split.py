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
from typing import Any

import numpy as np
import numpy.typing as npt
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


# What fold_constants evaluates at import: shape arithmetic, never a large tensor.
_FOLDABLE = frozenset({
    'Shape', 'Gather', 'Concat', 'Unsqueeze', 'Squeeze', 'Slice', 'Cast', 'Add', 'Sub', 'Mul',
    'Div', 'Range', 'Reshape', 'ConstantOfShape', 'Equal', 'Where', 'Expand', 'Identity',
    'ReduceProd', 'Floor', 'Ceil', 'Sqrt', 'Neg', 'Abs', 'Transpose', 'Flatten', 'Tile'})
_FOLD_MAX_ELEMENTS = 1 << 16


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """A shape-inferred ``model`` with its exporter's shape arithmetic evaluated: each
    ``Shape`` of a tensor whose shape is static, and each small op whose inputs are all
    constants, becomes an initializer. Unsimplified exports (e.g. Ultralytics' YOLOv8 with
    simplify=False) compute reshape targets from Shape nodes, which TVM's importer refuses
    ("emit_te now only supports Tensor that has ShapeExpr shape"); onnx-simplifier does the
    same before import."""
    graph = model.graph
    shapes = {info.name: [d.dim_value if d.HasField('dim_value') else 0
                          for d in info.type.tensor_type.shape.dim]
              for info in [*graph.input, *graph.value_info, *graph.output]}
    known = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    kept: list[onnx.NodeProto] = []
    folded = False
    for node in graph.node:
        if node.op_type == 'Constant':
            value = _constant_value(node)
            if value is not None:
                known[node.output[0]] = value
            kept.append(node)
            continue
        value = (_static_shape(node, shapes) if node.op_type == 'Shape'
                 else _folded(node, known))
        if value is None:
            kept.append(node)
        else:
            known[node.output[0]] = value
            folded = True
    if not folded:
        return model
    used = {name for node in kept for name in node.input} | {o.name for o in graph.output}
    result = onnx.ModelProto()
    result.CopyFrom(model)
    del result.graph.node[:]
    result.graph.node.extend(n for n in kept if n.op_type != 'Constant' or n.output[0] in used)
    produced = {init.name for init in graph.initializer}
    produced |= {out for node in kept for out in node.output}
    result.graph.initializer.extend(onnx.numpy_helper.from_array(value, name)
                                    for name, value in known.items()
                                    if name in used and name not in produced)
    return result


def _constant_value(node: onnx.NodeProto) -> npt.NDArray[Any] | None:
    for attribute in node.attribute:
        if attribute.name == 'value':
            return np.asarray(onnx.numpy_helper.to_array(attribute.t))
    return None


def _static_shape(node: onnx.NodeProto, shapes: dict[str, list[int]]
                  ) -> npt.NDArray[np.int64] | None:
    shape = shapes.get(node.input[0])
    if not shape or not all(shape):
        return None
    attributes = {a.name: a.i for a in node.attribute}
    return np.array(shape[attributes.get('start', 0):attributes.get('end', len(shape))],
                    np.int64)


def _folded(node: onnx.NodeProto, known: dict[str, npt.NDArray[Any]]
            ) -> npt.NDArray[Any] | None:
    """``node`` evaluated by onnx's reference evaluator, when it is small shape arithmetic on
    constants; None otherwise (TVM then imports it as it is)."""
    from onnx.reference import ReferenceEvaluator

    inputs = [name for name in node.input if name]
    if (node.op_type not in _FOLDABLE or node.domain not in ('', 'ai.onnx')
            or len(node.output) != 1 or not all(name in known for name in inputs)):
        return None
    graph = onnx.helper.make_graph(
        [node], 'fold',
        [onnx.helper.make_tensor_value_info(
            name, onnx.helper.np_dtype_to_tensor_dtype(known[name].dtype), known[name].shape)
         for name in inputs],
        [onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.UNDEFINED, None)])
    try:
        outputs: list[Any] = list(ReferenceEvaluator(graph).run(None, {n: known[n]
                                                                       for n in inputs}))
        value = np.asarray(outputs[0])
    except Exception:  # an op or attribute the reference evaluator lacks: left to TVM
        return None
    return value if value.size <= _FOLD_MAX_ELEMENTS else None
