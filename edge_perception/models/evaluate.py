"""Accuracy of every model variant on the held-out synthetic test split, run through TVM."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from edge_perception.runtime.tvm.store import ModelStore
from edge_perception.synthetic.scenes import Frame, generate_frame
from edge_perception.tasks.classes import (
    DETECTOR_CLASSES,
    LIGHT_STATES,
    SIGN_CHANNEL,
    SIGN_CLASSES,
)
from edge_perception.tasks.crops import light_crop, sign_crop
from edge_perception.tasks.detector_decoding import decode_peaks, detector_input
from edge_perception.tasks.metrics import APAccumulator, mean_ap

# Lower than the nodes' threshold: AP integrates over the whole precision/recall curve.
EVAL_THRESHOLD = 0.05


@dataclass(frozen=True)
class VariantScore:
    model: str
    variant: str
    metrics: dict[str, float]


def held_out_frames(count: int) -> list[Frame]:
    return [generate_frame('test', i) for i in range(count)]


def evaluate_detector(store: ModelStore, variant: str,
                      frames: Sequence[Frame]) -> dict[str, float]:
    engine = store.engine('detector', variant)
    lights = [APAccumulator() for _ in LIGHT_STATES]
    signs = APAccumulator()
    latencies = []
    for frame in tqdm(frames, desc=f'detector/{variant}', leave=False):
        start = time.perf_counter()
        output = engine.run(detector_input(frame.image))[0]
        latencies.append(time.perf_counter() - start)
        peaks = decode_peaks(output, channels=tuple(range(len(DETECTOR_CLASSES))),
                             image_width=frame.image.shape[1],
                             image_height=frame.image.shape[0], threshold=EVAL_THRESHOLD)
        for channel, accumulator in [*enumerate(lights), (SIGN_CHANNEL, signs)]:
            kind_label = DETECTOR_CLASSES[channel]
            truths = [(o.x, o.y, o.width, o.height) for o in frame.objects
                      if (o.kind == 'sign') == (channel == SIGN_CHANNEL)
                      and (channel == SIGN_CHANNEL or o.label == kind_label)]
            found = [(p.score, (p.x, p.y, p.width, p.height)) for p in peaks
                     if p.channel == channel]
            accumulator.add_frame(found, truths)
    return {
        'light_map50': mean_ap(lights),
        'sign_ap50': signs.average_precision(),
        'latency_ms_p50': float(np.median(latencies) * 1000),
    }


def _evaluate_crops(store: ModelStore, model: str, variant: str, frames: Sequence[Frame], *,
                    kind: str, classes: Sequence[str], cut: Callable[..., np.ndarray]
                    ) -> dict[str, float]:
    """Top-1 of ``model`` on every ``kind`` object's crop (its true box)."""
    engine = store.engine(model, variant)
    correct = total = 0
    latencies = []
    for frame in tqdm(frames, desc=f'{model}/{variant}', leave=False):
        for obj in frame.objects:
            if obj.kind != kind:
                continue
            crop = cut(frame.image, obj.x, obj.y, obj.width, obj.height)
            start = time.perf_counter()
            probabilities = engine.run(crop[None])[0]
            latencies.append(time.perf_counter() - start)
            correct += int(classes[int(np.argmax(probabilities))] == obj.label)
            total += 1
    return {'top1': correct / total, 'latency_ms_p50': float(np.median(latencies) * 1000)}


def evaluate_sign_classifier(store: ModelStore, variant: str,
                             frames: Sequence[Frame]) -> dict[str, float]:
    return _evaluate_crops(store, 'sign_classifier', variant, frames, kind='sign',
                           classes=SIGN_CLASSES, cut=sign_crop)


def evaluate_light_state(store: ModelStore, variant: str,
                         frames: Sequence[Frame]) -> dict[str, float]:
    return _evaluate_crops(store, 'light_state', variant, frames, kind='light',
                           classes=LIGHT_STATES, cut=light_crop)


EVALUATORS = {'detector': evaluate_detector, 'sign_classifier': evaluate_sign_classifier,
              'light_state': evaluate_light_state}


def evaluate(store: ModelStore, frames: Sequence[Frame],
             models: Sequence[str] | None = None) -> list[VariantScore]:
    scores = []
    for model in models or [m for m in sorted(store.manifest.models) if m in EVALUATORS]:
        for variant in sorted(store.manifest.models[model].variants):
            scores.append(VariantScore(model, variant,
                                       EVALUATORS[model](store, variant, frames)))
    return scores
