"""Training examples of the light-state classifier: what a detector's box of a light looks
like, cut as the lights task cuts it (tasks.crops.light_crop).

Real lights (models.real_lights) are pasted at 12-110 px high into the same backgrounds and
with the same sensor augmentation as the detector's real frames, then cut with the box
shifted and scaled by up to JITTER of its size, as a detector's boxes err (the crop's
margins keep the housing in view; a jitter of -40..+15 % to mimic our detector's partial
boxes of large lights did worse on validation: state accuracy 0.991 vs 0.997, full). The
synthetic scenes' lights add the 'off' state, which no real crop has. Yellow is 3 % of
the real crops, so each yellow one is used more often.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from edge_perception.models.real_lights import BACKGROUNDS, Crop, augment, background
from edge_perception.synthetic.scenes import FRAME_HEIGHT, FRAME_WIDTH, Frame
from edge_perception.tasks.classes import LIGHT_STATES
from edge_perception.tasks.crops import light_crop

JITTER = 0.15
YELLOW_REPEATS = 8
Examples = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]


def _jittered(image: npt.NDArray[np.uint8], box: tuple[float, float, float, float],
              rng: np.random.Generator) -> npt.NDArray[np.float32]:
    x, y, width, height = box
    dx, dy, dw, dh = rng.uniform(-JITTER, JITTER, 4)
    return light_crop(image, x + dx * width, y + dy * height, width * (1 + dw),
                      height * (1 + dh))


def real_examples(crops: Sequence[Crop], rng: np.random.Generator, *,
                  passes: int = 2) -> Examples:
    """Each real crop ``passes`` times (yellow ones more), pasted, augmented and cut."""
    images, labels = [], []
    for _ in range(passes):
        for crop in crops:
            for _ in range(YELLOW_REPEATS if crop.label == 'yellow' else 1):
                height = round(float(np.exp(rng.uniform(np.log(12), np.log(110)))))
                width = max(4, round(crop.image.shape[1] * height / crop.image.shape[0]))
                width = min(width, FRAME_WIDTH - 1)
                frame = background(BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], rng)
                x = int(rng.integers(0, FRAME_WIDTH - width))
                y = int(rng.integers(0, FRAME_HEIGHT - height))
                patch = cv2.resize(crop.image, (width, height), interpolation=cv2.INTER_AREA)
                frame[y:y + height, x:x + width] = augment(np.asarray(patch, np.uint8), rng)
                if rng.random() < 0.33:
                    ok, encoded = cv2.imencode('.jpg', frame, [cv2.IMWRITE_JPEG_QUALITY,
                                                               int(rng.integers(40, 95))])
                    if ok:
                        frame = np.asarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR), np.uint8)
                images.append(_jittered(frame, (x, y, width, height), rng))
                labels.append(LIGHT_STATES.index(crop.label))
    return _stacked(images, labels)


def synthetic_examples(frames: Sequence[Frame], rng: np.random.Generator) -> Examples:
    """Every light of the synthetic ``frames``, cut with a jittered box."""
    images, labels = [], []
    for frame in frames:
        for obj in frame.objects:
            if obj.kind == 'light':
                images.append(_jittered(frame.image, (obj.x, obj.y, obj.width, obj.height), rng))
                labels.append(LIGHT_STATES.index(obj.label))
    return _stacked(images, labels)


def _stacked(images: list[npt.NDArray[np.float32]], labels: list[int]) -> Examples:
    if not images:
        return np.zeros((0, 3, 32, 32), np.float32), np.zeros(0, np.int64)
    return np.stack(images), np.array(labels, np.int64)
