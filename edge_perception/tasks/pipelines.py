"""Task pipelines: frame in, detections out, with inference delegated to the caller.

A pipeline never holds a model. ``stages`` (of a :class:`Frame` shared by all tasks) is a
generator that yields an :class:`Inference` request for each model call and receives its
output: the caller decides where and when it runs (a lane, in priority order, maybe batched
with other jobs' requests), and a more urgent job can run between two requests. New task
instances need only config; a new kind of task adds a pipeline class here.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from edge_perception.tasks.classes import LIGHT_STATES, SIGN_CHANNEL, SIGN_CLASSES
from edge_perception.tasks.detections import Detection
from edge_perception.tasks.detector_decoding import decode_peaks
from edge_perception.tasks.frames import Frame
from edge_perception.tasks.sign_crops import sign_crop

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

    output_kind: ClassVar[str]
    models: ClassVar[tuple[str, ...]]
    threshold: float

    def stages(self, frame: Frame) -> DetectionStages: ...

    @staticmethod
    def accuracy(metrics: Mapping[str, Mapping[str, float]]) -> float:
        """Task accuracy of a variant from its models' manifest metrics (model -> metrics)."""
        ...


class TrafficLightPipeline:
    """Lights from the shared detector's four state heatmaps."""

    output_kind: ClassVar[str] = 'traffic_light'
    models: ClassVar[tuple[str, ...]] = ('detector',)

    def __init__(self, *, threshold: float = 0.3) -> None:
        self.threshold = threshold

    @staticmethod
    def accuracy(metrics: Mapping[str, Mapping[str, float]]) -> float:
        return metrics['detector']['light_map50']

    def stages(self, frame: Frame) -> DetectionStages:
        image = frame.image
        output = (yield Inference('detector', frame.detector_input))[0]
        peaks = decode_peaks(output, channels=tuple(range(len(LIGHT_STATES))),
                             image_width=image.shape[1], image_height=image.shape[0],
                             threshold=self.threshold)
        return [
            Detection(label=LIGHT_STATES[p.channel], class_id=p.channel, score=p.score,
                      x=p.x, y=p.y, width=p.width, height=p.height)
            for p in peaks
        ]


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
        detections = []
        for p in peaks:
            crop = sign_crop(image, p.x, p.y, p.width, p.height)
            probabilities = (yield Inference('sign_classifier', crop[None]))[0]
            class_id = int(np.argmax(probabilities))
            detections.append(Detection(
                label=SIGN_CLASSES[class_id], class_id=class_id,
                score=p.score * float(probabilities[class_id]),
                x=p.x, y=p.y, width=p.width, height=p.height,
            ))
        return detections


# One for each of core.config.PIPELINE_KINDS.
PIPELINES: dict[str, type[TrafficLightPipeline] | type[SignPipeline]] = {
    'traffic_light': TrafficLightPipeline,
    'traffic_sign': SignPipeline,
}
