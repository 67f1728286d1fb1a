"""``edge-perception add-model``: a user's ONNX file checked, registered and compiled.

Every check runs before anything is written: a file that is not ONNX, a model with more
than one input, a non-float or non-image input, a dynamic input without a size, outputs that
do not fit the kind, class names that do not match the outputs or a model onnxruntime cannot
load each end in :class:`AddModelError` naming the file and what is wrong, and the model
directory and manifest stay as they were.
"""

from __future__ import annotations

import ast
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx

from edge_perception.runtime.manifest import (
    Manifest,
    ModelEntry,
    ModelLoadError,
    VariantEntry,
    file_sha256,
)
from edge_perception.runtime.model_split import with_static_input
from edge_perception.runtime.onnxruntime_engine import OnnxRuntimeEngine
from edge_perception.tasks.model_spec import YOLO_PREPROCESS, Preprocess
from edge_perception.tasks.yolo_decoding import yolo_layout

NAME = re.compile(r'^[a-z][a-z0-9_]*$')
# The pipeline a model of each kind runs in when it is the task's only model.
PIPELINE_OF_KIND = {'yolo': 'yolo', 'classifier': 'classifier', 'centernet': 'centernet'}
DEFAULT_PREPROCESS = {
    'yolo': YOLO_PREPROCESS,
    'classifier': Preprocess(resize='stretch', channels='rgb', scale=1 / 255),
    'centernet': Preprocess(),  # ours: BGR in [0, 255]
}


class AddModelError(ValueError):
    """The model cannot be added; the message names the file and what is wrong."""


@dataclass(frozen=True)
class CheckedModel:
    """What the checks found: the model at its static input, and its classes."""

    model: onnx.ModelProto
    input_shape: tuple[int, int, int, int]
    output_shape: tuple[int, ...]
    classes: tuple[str, ...]


def _image_input(path: Path, model: onnx.ModelProto) -> onnx.ValueInfoProto:
    weights = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if len(inputs) != 1:
        names = ', '.join(i.name for i in inputs)
        raise AddModelError(f'{path}: the model has {len(inputs)} inputs ({names}); a task '
                            'model takes one image')
    image: onnx.ValueInfoProto = inputs[0]
    tensor = image.type.tensor_type
    if tensor.elem_type != onnx.TensorProto.FLOAT:
        kind = onnx.TensorProto.DataType.Name(tensor.elem_type)
        raise AddModelError(f'{path}: input {image.name!r} is {kind}, not float32')
    if len(tensor.shape.dim) != 4:
        raise AddModelError(f'{path}: input {image.name!r} has rank {len(tensor.shape.dim)}; '
                            'an image input is [N, 3, height, width]')
    return image


def _input_shape(path: Path, image: onnx.ValueInfoProto,
                 input_size: tuple[int, int] | None) -> tuple[int, int, int, int]:
    dims: list[int | None] = [int(d.dim_value) if d.HasField('dim_value') else None
                              for d in image.type.tensor_type.shape.dim]
    if dims[1] not in (3, None):
        raise AddModelError(f'{path}: input {image.name!r} has {dims[1]} channels, not 3')
    if input_size is not None:
        width, height = input_size
        if None not in dims[2:] and (dims[2], dims[3]) != (height, width):
            raise AddModelError(f'{path}: --input-size {width}x{height} contradicts the '
                                f'fixed input {dims[3]}x{dims[2]}')
    elif None in dims[2:]:
        shown = ['?' if d is None else d for d in dims]
        raise AddModelError(f'{path}: input {image.name!r} has a dynamic size {shown}: give '
                            '--input-size WxH')
    else:
        height, width = int(dims[2] or 0), int(dims[3] or 0)
    if dims[0] not in (1, None):
        raise AddModelError(f'{path}: input batch is fixed at {dims[0]}; export it with batch '
                            '1 or a dynamic batch')
    return 1, 3, int(height), int(width)


def metadata_classes(model: onnx.ModelProto) -> tuple[str, ...] | None:
    """Class names an Ultralytics export records (metadata ``names``: "{0: 'person', ...}")."""
    for prop in model.metadata_props:
        if prop.key == 'names':
            try:
                names = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            if isinstance(names, dict):
                return tuple(str(names[k]) for k in sorted(names))
            if isinstance(names, list):
                return tuple(str(n) for n in names)
    return None


def _check_outputs(path: Path, kind: str, shape: tuple[int, ...],
                   classes: Sequence[str]) -> None:
    n = len(classes)
    if kind == 'yolo':
        try:
            yolo_layout(shape, n)
        except ValueError as err:
            raise AddModelError(f'{path}: {err} ({n} class names given)') from None
    elif kind == 'classifier':
        flat = [d for d in shape[1:] if d != 1]
        if shape[:1] != (1,) or len(flat) != 1 or flat[0] != n:
            raise AddModelError(f'{path}: output shape {list(shape)} does not fit a classifier '
                                f'of {n} classes: expected [1, {n}]')
    elif len(shape) != 4 or shape[1] != n + 4:
        raise AddModelError(f'{path}: output shape {list(shape)} does not fit a centernet '
                            f'detector of {n} classes: expected [1, {n + 4}, h, w] (class '
                            'heatmaps, log-width, log-height, x and y offsets)')


def check_model(path: Path, *, kind: str, classes: Sequence[str] | None,
                input_size: tuple[int, int] | None) -> CheckedModel:
    """:raises AddModelError: naming ``path`` and what does not fit."""
    if not path.is_file():
        raise AddModelError(f'{path}: no such file')
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as err:  # onnx raises DecodeError, ValidationError, OSError, ...
        raise AddModelError(f'{path} is not a valid ONNX model: {err}') from None
    image = _image_input(path, model)
    input_shape = _input_shape(path, image, input_size)
    names = tuple(classes) if classes else metadata_classes(model)
    if not names:
        raise AddModelError(f"{path}: no class names in the model's metadata: give "
                            '--classes NAME [NAME ...]')
    try:
        static = with_static_input(model, input_shape)
    except (ModelLoadError, onnx.shape_inference.InferenceError) as err:
        raise AddModelError(f'{path}: shapes cannot be inferred at input '
                            f'{list(input_shape)}: {err}') from None
    output = static.graph.output[0].type.tensor_type.shape.dim
    output_shape = tuple(d.dim_value for d in output)
    _check_outputs(path, kind, output_shape, names)
    try:  # the engine a new model first runs on must accept it
        OnnxRuntimeEngine(static, name=str(path), input_shape=input_shape).run(
            np.zeros(input_shape, np.float32))
    except (ModelLoadError, Exception) as err:
        raise AddModelError(f'{path}: onnxruntime cannot run it: {err}') from None
    return CheckedModel(static, input_shape, output_shape, names)


def add_model(path: Path, *, zoo: Path, name: str, kind: str, variant: str = 'full',
              classes: Sequence[str] | None = None, input_size: tuple[int, int] | None = None,
              preprocess: Preprocess | None = None, replace_existing: bool = False
              ) -> ModelEntry:
    """Check ``path``, copy it to ``<zoo>/<name>/<variant>.onnx`` and record it (SHA-256,
    kind, input, classes, pre-processing) in the manifest; returns the entry."""
    if not NAME.match(name):
        raise AddModelError(f'model name {name!r}: use lower-case letters, digits and _')
    if not NAME.match(variant):
        raise AddModelError(f'variant name {variant!r}: use lower-case letters, digits and _')
    manifest = Manifest.load_or_empty(zoo)
    existing = manifest.models.get(name)
    if existing is not None and variant in existing.variants and not replace_existing:
        raise AddModelError(f'{zoo}: model {name!r} already has a variant {variant!r} '
                            '(--variant NAME adds another, --replace replaces it)')
    checked = check_model(path, kind=kind, classes=classes, input_size=input_size)
    if existing is not None and (existing.kind, existing.input_shape, existing.classes) != (
            kind, checked.input_shape, checked.classes):
        raise AddModelError(
            f'{path}: variants of {name!r} must share its kind, input and classes '
            f'({existing.kind}, {list(existing.input_shape)}, {len(existing.classes)} classes)')
    target = zoo / name / f'{variant}.onnx'
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    entry = VariantEntry(file=f'{name}/{variant}.onnx', sha256=file_sha256(target),
                         width=1.0, parameters=int(sum(
                             np.prod(init.dims) for init in checked.model.graph.initializer)))
    template = ModelEntry(checked.input_shape, checked.classes, {}, kind=kind,
                          preprocess=preprocess or DEFAULT_PREPROCESS[kind])
    if existing is not None:
        template = replace(existing, preprocess=preprocess or existing.preprocess)
    manifest = manifest.with_variant(name, template, variant, entry)
    manifest = replace(manifest, models={**manifest.models, name: replace(
        manifest.models[name], preprocess=template.preprocess)})
    manifest.save()
    return manifest.models[name]


def config_snippet(name: str, entry: ModelEntry, *, lane: str = 'cpu',
                   input_topic: str = '/camera/image_raw') -> str:
    """The task to add under ``tasks:`` in the config."""
    variants = sorted(entry.variants)
    return '\n'.join([
        f'  - name: {name}',
        f'    node: {name}_node',
        f'    pipeline: {PIPELINE_OF_KIND[entry.kind]}',
        '    period_ms: 100.0',
        '    deadline_ms: 100.0',
        f'    lane: {lane}',
        f'    models: [{name}]',
        f'    variants: [{", ".join(variants)}]',
        f'    variant: {variants[0]}',
        f'    input_topic: {input_topic}',
        f'    output_topic: /perception/{name}',
        '    engine: auto  # onnxruntime until tuned here, then TVM',
    ])


