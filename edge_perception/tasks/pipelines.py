"""Task pipelines: frame in, detections out, with inference delegated to the caller.

A pipeline never holds a model. ``stages`` (of a :class:`Frame` shared by all tasks) is a
generator that yields an :class:`Inference` request for each model call and receives its
output: the caller decides where and when it runs (a lane, in priority order, maybe batched
with other jobs' requests), and a more urgent job can run between two requests. New task
instances need only config; a new kind of task adds a pipeline class here.

Ours (``traffic_light``, ``traffic_sign``) publish typed lights and signs: the shared
detector finds them, a crop classifier names each (the light's state, the sign's class).
The generic ones (``yolo``, ``centernet``, ``classifier``) run a user's models as their
manifest entries declare them (:class:`ModelSpec`: kind, input, pre-processing, class
names) and publish the generic DetectionArray.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from edge_perception.tasks.classes import LIGHT_STATES, SIGN_CHANNEL, SIGN_CLASSES
from edge_perception.tasks.crops import light_crop, sign_crop
from edge_perception.tasks.detections import Detection
from edge_perception.tasks.detector_decoding import Peak, decode_peaks
from edge_perception.tasks.frames import Frame
from edge_perception.tasks.model_spec import ModelSpec
from edge_perception.tasks.preprocessing import prepare
from edge_perception.tasks.yolo_decoding import decode_yolo

Array = npt.NDArray[np.float32]
Infer = Callable[[str, Array], Array]


@dataclass(frozen=True)
class Inference:
    """A pipeline's request: run ``model`` (of the task's current variant) on ``inputs``."""

    model: str
    inputs: Array


DetectionStages = Generator[Inference, Array, list[Detection]]


class TaskPipeline(Protocol):
    """Turns one BGR frame into detections; ``models`` lists the model names it infers with."""

    @property
    def output_kind(self) -> str: ...

    @property
    def models(self) -> tuple[str, ...]: ...

    threshold: float

    def stages(self, frame: Frame) -> DetectionStages: ...

    def accuracy(self, metrics: Mapping[str, Mapping[str, float]]) -> float:
        """Task accuracy of a variant from its models' manifest metrics (model -> metrics)."""
        ...


def _named(image: npt.NDArray[np.uint8], peaks: Sequence[Peak], model: str,
           cut: Callable[..., Array], classes: Sequence[str]) -> DetectionStages:
    """Each peak's crop (``cut`` from the frame) named by the crop classifier ``model``; a
    detection's score is the peak's times its class's probability."""
    detections = []
    for p in peaks:
        crop = cut(image, p.x, p.y, p.width, p.height)
        probabilities = (yield Inference(model, crop[None]))[0]
        class_id = int(np.argmax(probabilities))
        detections.append(Detection(
            label=classes[class_id], class_id=class_id,
            score=p.score * float(probabilities[class_id]),
            x=p.x, y=p.y, width=p.width, height=p.height,
        ))
    return detections


class TrafficLightPipeline:
    """Lights located by the shared detector's four state heatmaps, their state named by the
    light-state classifier on each light's crop (as Autoware's traffic-light pipeline does:
    on real lights it errs a third as often as the heatmap's state, docs/model-card.md)."""

    output_kind: ClassVar[str] = 'traffic_light'
    models: ClassVar[tuple[str, ...]] = ('detector', 'light_state')

    def __init__(self, *, threshold: float = 0.3, max_lights: int = 6) -> None:
        self.threshold = threshold
        self.max_lights = max_lights

    @staticmethod
    def accuracy(metrics: Mapping[str, Mapping[str, float]]) -> float:
        return metrics['detector']['light_map50'] * metrics['light_state']['top1']

    def stages(self, frame: Frame) -> DetectionStages:
        image = frame.image
        output = (yield Inference('detector', frame.detector_input))[0]
        peaks = decode_peaks(output, channels=tuple(range(len(LIGHT_STATES))),
                             image_width=image.shape[1], image_height=image.shape[0],
                             threshold=self.threshold, max_peaks=self.max_lights)
        return (yield from _named(image, peaks, 'light_state', light_crop, LIGHT_STATES))


class SignPipeline:
    """Signs located by the shared detector's sign heatmap, then named by the classifier."""

    output_kind: ClassVar[str] = 'traffic_sign'
    models: ClassVar[tuple[str, ...]] = ('detector', 'sign_classifier')

    def __init__(self, *, threshold: float = 0.3, max_signs: int = 6) -> None:
        self.threshold = threshold
        self.max_signs = max_signs

    @staticmethod
    def accuracy(metrics: Mapping[str, Mapping[str, float]]) -> float:
        """A sign counts when it is both found and named correctly."""
        return metrics['detector']['sign_ap50'] * metrics['sign_classifier']['top1']

    def stages(self, frame: Frame) -> DetectionStages:
        image = frame.image
        output = (yield Inference('detector', frame.detector_input))[0]
        peaks = decode_peaks(output, channels=(SIGN_CHANNEL,), image_width=image.shape[1],
                             image_height=image.shape[0], threshold=self.threshold,
                             max_peaks=self.max_signs)
        return (yield from _named(image, peaks, 'sign_classifier', sign_crop, SIGN_CLASSES))


class YoloPipeline:
    """An Ultralytics-style YOLO export: boxes above ``threshold``, class-wise NMS."""

    output_kind = 'detection'

    def __init__(self, model: str, spec: ModelSpec, *, threshold: float = 0.25,
                 iou_threshold: float = 0.45) -> None:
        self.models = (model,)
        self.spec = spec
        self.threshold = threshold
        self.iou_threshold = iou_threshold

    def accuracy(self, metrics: Mapping[str, Mapping[str, float]]) -> float:
        return _declared_accuracy(metrics, self.models)

    def stages(self, frame: Frame) -> DetectionStages:
        tensor, where = frame.model_input(self.spec.preprocess, self.spec.input_size)
        output = (yield Inference(self.models[0], tensor))[0]
        return decode_yolo(output, self.spec.classes, where, score_threshold=self.threshold,
                           iou_threshold=self.iou_threshold)


class CenterNetPipeline:
    """A heatmap detector laid out as ours (class heatmaps, then log-width, log-height and
    two offsets): a box per local maximum of any class above ``threshold``."""

    output_kind = 'detection'

    def __init__(self, model: str, spec: ModelSpec, *, threshold: float = 0.3,
                 max_detections: int = 20) -> None:
        self.models = (model,)
        self.spec = spec
        self.threshold = threshold
        self.max_detections = max_detections

    def accuracy(self, metrics: Mapping[str, Mapping[str, float]]) -> float:
        return _declared_accuracy(metrics, self.models)

    def stages(self, frame: Frame) -> DetectionStages:
        tensor, where = frame.model_input(self.spec.preprocess, self.spec.input_size)
        output = (yield Inference(self.models[0], tensor))[0]
        input_h, input_w = self.spec.input_size
        peaks = decode_peaks(output, channels=tuple(range(len(self.spec.classes))),
                             image_width=input_w, image_height=input_h,
                             threshold=self.threshold, max_peaks=self.max_detections,
                             stride=input_w / output.shape[2])
        detections = []
        for p in peaks:
            x, y, width, height = where.to_frame(p.x, p.y, p.width, p.height)
            detections.append(Detection(label=self.spec.classes[p.channel], class_id=p.channel,
                                        score=p.score, x=x, y=y, width=width, height=height))
        return detections


class ClassifierPipeline:
    """A classifier on the whole frame (one model: one detection spanning the frame, if its
    best class scores ``threshold``), or on the boxes of a detector (two models, detector
    first: each box is cropped with a margin and named by the classifier; its score is the
    box's times the class's)."""

    output_kind = 'detection'
    margin = 0.15  # context kept around a box, as a fraction of its size

    def __init__(self, models: Sequence[str], specs: Mapping[str, ModelSpec], *,
                 threshold: float = 0.3) -> None:
        self.models = tuple(models)
        self.threshold = threshold
        self.spec = specs[self.models[-1]]
        self.detector: TaskPipeline | None = None
        if len(self.models) == 2:
            self.detector = make_pipeline(specs[self.models[0]].kind, self.models[:1], specs)
            self.detector.threshold = threshold

    def accuracy(self, metrics: Mapping[str, Mapping[str, float]]) -> float:
        return _declared_accuracy(metrics, self.models)

    def stages(self, frame: Frame) -> DetectionStages:
        image = frame.image
        if self.detector is None:
            tensor, _ = frame.model_input(self.spec.preprocess, self.spec.input_size)
            class_id, score = _best_class((yield Inference(self.models[0], tensor))[0])
            if score < self.threshold:
                return []
            return [Detection(label=self.spec.classes[class_id], class_id=class_id, score=score,
                              x=0.0, y=0.0, width=float(image.shape[1]),
                              height=float(image.shape[0]))]
        boxes = yield from self.detector.stages(frame)
        detections = []
        for box in boxes:
            crop = self._crop(image, box)
            if crop is None:
                continue
            tensor, _ = prepare(crop, self.spec.input_size, self.spec.preprocess)
            class_id, score = _best_class((yield Inference(self.models[1], tensor))[0])
            detections.append(Detection(
                label=self.spec.classes[class_id], class_id=class_id, score=box.score * score,
                x=box.x, y=box.y, width=box.width, height=box.height))
        return detections

    def _crop(self, image: npt.NDArray[np.uint8],
              box: Detection) -> npt.NDArray[np.uint8] | None:
        pad_x, pad_y = box.width * self.margin, box.height * self.margin
        x1, y1 = max(int(box.x - pad_x), 0), max(int(box.y - pad_y), 0)
        x2 = min(int(np.ceil(box.x + box.width + pad_x)), image.shape[1])
        y2 = min(int(np.ceil(box.y + box.height + pad_y)), image.shape[0])
        return None if x2 <= x1 or y2 <= y1 else np.ascontiguousarray(image[y1:y2, x1:x2])


def _best_class(scores: Array) -> tuple[int, float]:
    """The best class of a classifier output and its probability; logits (values outside
    [0, 1] or not summing to 1) go through a softmax first."""
    values = np.asarray(scores, np.float64).reshape(-1)
    if values.min() < 0 or values.max() > 1 or abs(values.sum() - 1) > 1e-3:
        values = np.exp(values - values.max())
        values /= values.sum()
    best = int(np.argmax(values))
    return best, float(values[best])


def _declared_accuracy(metrics: Mapping[str, Mapping[str, float]],
                       models: Sequence[str]) -> float:
    """The product of the models' declared ``accuracy`` metrics (1.0 where none is given:
    variants of a user model are then ranked only by their order in the config)."""
    return float(np.prod([metrics.get(model, {}).get('accuracy', 1.0) for model in models]))


class PipelineError(ValueError):
    """A task's pipeline does not fit its models."""


# Each pipeline kind's model kinds: ours take our detector (and classifier) by name.
PIPELINE_MODEL_KINDS = {
    'traffic_light': ('centernet', 'classifier'), 'traffic_sign': ('centernet', 'classifier'),
    'yolo': ('yolo',), 'centernet': ('centernet',),
}


def output_kind(kind: str) -> str:
    """The message kind a pipeline of ``kind`` publishes (see ros.message_adapter)."""
    return kind if kind in ('traffic_light', 'traffic_sign') else 'detection'


def make_pipeline(kind: str, models: Sequence[str],
                  specs: Mapping[str, ModelSpec]) -> TaskPipeline:
    """The pipeline of a task of ``kind`` over ``models`` (their specs from the manifest).

    :raises PipelineError: naming the task's model that does not fit."""
    models = tuple(models)
    if kind == 'classifier':
        expected: tuple[str, ...] = (('classifier',) if len(models) == 1 else
                                     (specs[models[0]].kind if models[0] in specs else '?',
                                      'classifier'))
        if len(models) == 2 and expected[0] not in ('yolo', 'centernet'):
            raise PipelineError(f'a classifier task takes a yolo or centernet detector first; '
                                f'{models[0]!r} is a {expected[0]}')
    elif kind in PIPELINE_MODEL_KINDS:
        expected = PIPELINE_MODEL_KINDS[kind]
    else:
        raise PipelineError(f'unknown pipeline {kind!r} (known: {list(PIPELINES)})')
    if len(models) != len(expected):
        raise PipelineError(f'a {kind} task takes {len(expected)} model(s) '
                            f'({", ".join(expected)}), not {list(models)}')
    for model, model_kind in zip(models, expected, strict=True):
        if model not in specs:
            raise PipelineError(f'model {model!r} is not in the manifest')
        if specs[model].kind != model_kind:
            raise PipelineError(f'a {kind} task needs a {model_kind} model; {model!r} is '
                                f'declared {specs[model].kind!r} in the manifest')
    if kind == 'traffic_light':
        return TrafficLightPipeline()
    if kind == 'traffic_sign':
        return SignPipeline()
    if kind == 'classifier':
        return ClassifierPipeline(models, specs)
    if kind == 'yolo':
        return YoloPipeline(models[0], specs[models[0]])
    return CenterNetPipeline(models[0], specs[models[0]])


# One for each of core.config.PIPELINE_KINDS.
PIPELINES: dict[str, type] = {
    'traffic_light': TrafficLightPipeline,
    'traffic_sign': SignPipeline,
    'yolo': YoloPipeline,
    'centernet': CenterNetPipeline,
    'classifier': ClassifierPipeline,
}


def run_pipeline(pipeline: TaskPipeline, infer: Infer, frame: Frame) -> list[Detection]:
    """All of ``pipeline``'s stages on ``frame`` at once, each request run by ``infer``
    (no lane, no scheduler: tools and evaluation)."""
    stages = pipeline.stages(frame)
    try:
        request = next(stages)
        while True:
            request = stages.send(infer(request.model, request.inputs))
    except StopIteration as done:
        detections: list[Detection] = done.value
        return detections
