"""Small ONNX models in the formats users bring, built with onnx.helper (real files that
onnxruntime and TVM run), whose outputs are known by construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CELL = 8  # the YOLO head predicts one box per 8x8 cell


def yolo_v8(path: Path, *, size: int = 64, dynamic: bool = False,
            names: tuple[str, ...] | None = ('red', 'green'), shape_ops: bool = False) -> Path:
    """A YOLOv8-format detector, output [1, 6, (size/8)^2]: per 8x8 cell a box of the cell,
    class 'red' scoring sigmoid(10 (R - G) - 2) and 'green' sigmoid(10 (G - R) - 2) of the
    cell's mean colour (input RGB in [0, 1]). Ultralytics-style ``names`` metadata.
    ``shape_ops``: the reshape target is computed from Shape, as unsimplified exports do."""
    cells = size // CELL
    centres = (np.arange(cells, dtype=np.float32) + 0.5) * CELL
    cy, cx = np.meshgrid(centres, centres, indexing='ij')
    boxes = np.stack([cx.ravel(), cy.ravel(), np.full(cells * cells, CELL, np.float32),
                      np.full(cells * cells, CELL, np.float32)])[None].astype(np.float32)
    weights = np.zeros((2, 3, 1, 1), np.float32)
    weights[0, :, 0, 0] = [10, -10, 0]
    weights[1, :, 0, 0] = [-10, 10, 0]
    side = 'size' if dynamic else size
    graph = helper.make_graph(
        [helper.make_node('AveragePool', ['images'], ['cells'], kernel_shape=[CELL, CELL],
                          strides=[CELL, CELL]),
         helper.make_node('Conv', ['cells', 'w', 'b'], ['logits']),
         helper.make_node('Sigmoid', ['logits'], ['scores']),
         helper.make_node('Reshape', ['scores', 'flat'], ['class_rows']),
         # As Ultralytics' head does (x.split by a size computed from x.shape): a Slice
         # whose end is shape arithmetic; it slices nothing off here.
         *([helper.make_node('Shape', ['class_rows'], ['rows_shape']),
            helper.make_node('Gather', ['rows_shape', 'one'], ['classes'], axis=0),
            helper.make_node('Add', ['classes', 'zero'], ['classes_plus']),
            helper.make_node('Div', ['classes_plus', 'one'], ['classes_div']),
            helper.make_node('Mul', ['classes_div', 'one'], ['end']),
            helper.make_node('Slice', ['class_rows', 'zero', 'end', 'one'], ['sliced'])]
           if shape_ops else [helper.make_node('Identity', ['class_rows'], ['sliced'])]),
         helper.make_node('Concat', ['boxes', 'sliced'], ['output0'], axis=1)],
        'yolo_test',
        [helper.make_tensor_value_info('images', TensorProto.FLOAT, [1, 3, side, side])],
        [helper.make_tensor_value_info('output0', TensorProto.FLOAT, [1, 6, None])],
        [numpy_helper.from_array(weights, 'w'),
         numpy_helper.from_array(np.array([-2, -2], np.float32), 'b'),
         numpy_helper.from_array(np.array([1, 2, -1], np.int64), 'flat'),
         numpy_helper.from_array(np.array([0], np.int64), 'zero'),
         numpy_helper.from_array(np.array([1], np.int64), 'one'),
         numpy_helper.from_array(boxes, 'boxes')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    if names is not None:
        helper.set_model_props(model, {'names': str(dict(enumerate(names)))})
    onnx.save(model, str(path))
    return path


def colour_classifier(path: Path, *, size: int = 16) -> Path:
    """A classifier of the mean colour, output [1, 2] logits: 'reddish' 10 (R - G),
    'greenish' 10 (G - R) (input RGB in [0, 1])."""
    weights = np.zeros((2, 3, 1, 1), np.float32)
    weights[0, :, 0, 0] = [10, -10, 0]
    weights[1, :, 0, 0] = [-10, 10, 0]
    graph = helper.make_graph(
        [helper.make_node('GlobalAveragePool', ['image'], ['mean']),
         helper.make_node('Conv', ['mean', 'w'], ['logits']),
         helper.make_node('Flatten', ['logits'], ['scores'])],
        'colour_classifier',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info('scores', TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(weights, 'w')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def two_inputs(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node('Add', ['a', 'b'], ['out'])], 'two_inputs',
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 8, 8]) for n in 'ab'],
        [helper.make_tensor_value_info('out', TensorProto.FLOAT, [1, 3, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def red_and_green_image(size: tuple[int, int] = (96, 64)) -> np.ndarray:
    """A BGR image (width, height = ``size``): grey, a red square at the left, a green one
    at the right, each 16x16 and on the 8-px grid once letterboxed to 64x64 at 96x64."""
    width, height = size
    image = np.full((height, width, 3), 128, np.uint8)
    image[16:32, 16:32] = (0, 0, 255)
    image[16:32, 64:80] = (0, 255, 0)
    return image
