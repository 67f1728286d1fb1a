"""Seeded procedural F1TENTH-style camera frames with exact traffic-light and sign labels.

No data set can be downloaded here, so the project draws its own: a road scene (sky, horizon,
buildings, trees, lane marks), 0-2 traffic lights (red/yellow/green/off) and 0-2 signs of
8 classes, with random size, position, blur, lighting, occlusion and sensor noise. Frame ``i`` of
split ``s`` depends only on (split seed, i), so splits are fixed and disjoint.
Pure numpy/OpenCV: the synthetic bag writer uses it at run time without torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_perception.tasks.classes import LIGHT_STATES, SIGN_CLASSES

FRAME_WIDTH = 320
FRAME_HEIGHT = 240
SPLIT_SEEDS = {'train': 1_000_003, 'val': 2_000_003, 'test': 3_000_017, 'demo': 4_000_037}

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class SceneObject:
    """A labelled object: ``kind`` is 'light' or 'sign'; box is (x, y, width, height) px."""

    kind: str
    label: str
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Frame:
    image: Image
    objects: tuple[SceneObject, ...]


def frame_rng(split: str, index: int) -> np.random.Generator:
    if split not in SPLIT_SEEDS:
        raise ValueError(f'unknown split {split!r} (known: {sorted(SPLIT_SEEDS)})')
    return np.random.default_rng([SPLIT_SEEDS[split], index])


def generate_frame(split: str, index: int) -> Frame:
    """Frame ``index`` of ``split``; the same arguments always give the same frame."""
    rng = frame_rng(split, index)
    image = _background(rng)
    taken: list[tuple[int, int, int, int]] = []
    objects: list[SceneObject] = []
    for kind, labels, draw, aspect, min_h, max_h in _OBJECT_KINDS:
        for _ in range(int(rng.integers(0, 3))):
            box = _free_box(rng, taken, aspect=aspect, min_h=min_h, max_h=max_h)
            if box is not None:
                label = labels[int(rng.integers(len(labels)))]
                draw(image, rng, box, label)
                objects.append(SceneObject(kind, label, *map(float, box)))
    for box in taken:
        if rng.random() < 0.2:
            _occlude(image, rng, box)
    return Frame(image=_camera_effects(image, rng), objects=tuple(objects))


def empty_scene(rng: np.random.Generator) -> Image:
    """A road scene without lights or signs (sky, buildings, trees, lane marks): the
    background real objects are pasted into."""
    return _background(rng)


def _colour(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    b, g, r = rng.integers(low, high, size=3)
    return int(b), int(g), int(r)


def _background(rng: np.random.Generator) -> Image:
    h, w = FRAME_HEIGHT, FRAME_WIDTH
    horizon = int(rng.integers(80, 140))
    image = np.empty((h, w, 3), np.uint8)
    sky_top = np.array(_colour(rng, 120, 255), np.float32)
    sky_low = np.array(_colour(rng, 150, 255), np.float32)
    t = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None, None]
    image[:horizon] = (sky_top * (1 - t) + sky_low * t).astype(np.uint8)
    image[horizon:] = np.array(_colour(rng, 50, 130), np.uint8)
    for _ in range(int(rng.integers(2, 8))):  # buildings on the horizon
        bw, bh = int(rng.integers(20, 90)), int(rng.integers(15, 80))
        bx = int(rng.integers(-10, w))
        cv2.rectangle(image, (bx, horizon - bh), (bx + bw, horizon), _colour(rng, 30, 220), -1)
    for _ in range(int(rng.integers(0, 6))):  # trees: round blobs, sometimes red or yellow-ish
        cx, cy = int(rng.integers(0, w)), int(rng.integers(horizon - 60, horizon + 10))
        cv2.circle(image, (cx, cy), int(rng.integers(6, 22)), _colour(rng, 0, 200), -1)
    vanish = (int(rng.integers(100, 220)), horizon)
    for lane_x in (-60, w // 2, w + 60):  # lane marks converging at the horizon
        cv2.line(image, (lane_x, h), vanish, (230, 230, 230), int(rng.integers(1, 4)))
    return image


def _free_box(
    rng: np.random.Generator,
    taken: list[tuple[int, int, int, int]],
    *,
    aspect: float,
    min_h: int,
    max_h: int,
) -> tuple[int, int, int, int] | None:
    """A box of height/width ``aspect`` that overlaps no taken box; None after 20 tries."""
    for _ in range(20):
        bh = int(rng.integers(min_h, max_h + 1))
        bw = max(6, round(bh / aspect))
        x = int(rng.integers(0, FRAME_WIDTH - bw))
        y = int(rng.integers(0, FRAME_HEIGHT - bh))
        if all(
            x + bw + 4 < tx or tx + tw + 4 < x or y + bh + 4 < ty or ty + th + 4 < y
            for tx, ty, tw, th in taken
        ):
            taken.append((x, y, bw, bh))
            return x, y, bw, bh
    return None


_LAMP_ON = {'red': (40, 40, 255), 'yellow': (20, 210, 255), 'green': (90, 255, 60)}
_LAMP_OFF = {'red': (20, 20, 70), 'yellow': (15, 60, 75), 'green': (35, 70, 25)}


def _draw_light(image: Image, rng: np.random.Generator, box: tuple[int, ...], state: str) -> None:
    x, y, w, h = box
    grey = int(rng.integers(10, 60))
    cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), (grey, grey, grey), -1)
    radius = max(2, round(min(w, h / 3) * 0.36))
    for slot, lamp in enumerate(('red', 'yellow', 'green')):
        centre = (x + w // 2, y + round(h * (slot + 0.5) / 3))
        colour = _LAMP_ON[lamp] if lamp == state else _LAMP_OFF[lamp]
        if lamp == state:
            gain = rng.uniform(0.75, 1.0)
            b, g, r = (int(min(255, c * gain + 30)) for c in colour)
            colour = (b, g, r)
        cv2.circle(image, centre, radius, colour, -1, lineType=cv2.LINE_AA)


def _draw_sign(image: Image, rng: np.random.Generator, box: tuple[int, ...], label: str) -> None:
    x, y, w, h = box
    size = 64  # drawn large, then resized into the box, for clean shapes at every size
    patch = np.zeros((size, size, 3), np.uint8)
    mask = np.zeros((size, size), np.uint8)
    c, r = size // 2, size // 2 - 1
    red, white, blue, black = (30, 30, 210), (245, 245, 245), (200, 90, 20), (20, 20, 20)
    if label == 'stop':
        angles = np.deg2rad(22.5 + 45 * np.arange(8))
        octagon = np.stack([c + r * np.cos(angles), c + r * np.sin(angles)], 1).astype(np.int32)
        cv2.fillPoly(patch, [octagon], red)
        cv2.fillPoly(mask, [octagon], 255)
        cv2.putText(patch, 'STOP', (7, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.62, white, 2)
    elif label == 'yield':
        triangle = np.array([[1, 2], [size - 2, 2], [c, size - 2]], np.int32)
        cv2.fillPoly(patch, [triangle], red)
        cv2.fillPoly(mask, [triangle], 255)
        inner = np.array([[12, 9], [size - 13, 9], [c, size - 20]], np.int32)
        cv2.fillPoly(patch, [inner], white)
    else:
        cv2.circle(mask, (c, c), r, 255, -1)
        if label == 'no_entry':
            cv2.circle(patch, (c, c), r, red, -1)
            cv2.rectangle(patch, (10, c - 6), (size - 11, c + 6), white, -1)
        elif label.startswith('speed_'):
            cv2.circle(patch, (c, c), r, red, -1)
            cv2.circle(patch, (c, c), r - 8, white, -1)
            cv2.putText(patch, label[6:], (13, 42), cv2.FONT_HERSHEY_SIMPLEX, 0.95, black, 3)
        else:  # turn arrows
            cv2.circle(patch, (c, c), r, blue, -1)
            left, right = (12, c), (size - 12, c)
            tip, tail = (left, right) if label == 'turn_left' else (right, left)
            cv2.arrowedLine(patch, tail, tip, white, 7, tipLength=0.45)
    pole = _colour(rng, 90, 160)
    cv2.line(image, (x + w // 2, y + h), (x + w // 2, min(FRAME_HEIGHT - 1, y + 3 * h)), pole, 2)
    shade = rng.uniform(0.6, 1.1)
    small = cv2.resize(patch, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) * shade
    alpha = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA)[:, :, None] / 255.0
    region = image[y : y + h, x : x + w].astype(np.float32)
    image[y : y + h, x : x + w] = np.clip(alpha * small + (1 - alpha) * region, 0, 255).astype(
        np.uint8
    )


# Per object kind: labels, drawing function, height/width aspect and height range (px).
_OBJECT_KINDS: tuple[tuple[str, tuple[str, ...], Callable[..., None], float, int, int], ...] = (
    ('light', LIGHT_STATES, _draw_light, 2.5, 20, 70),
    ('sign', SIGN_CLASSES, _draw_sign, 1.0, 16, 52),
)


def _occlude(image: Image, rng: np.random.Generator, box: tuple[int, int, int, int]) -> None:
    """Hide at most a quarter of the object behind a branch-coloured bar."""
    x, y, w, h = box
    if rng.random() < 0.5:
        bw, bh = w, max(1, int(h * rng.uniform(0.08, 0.25)))
    else:
        bw, bh = max(1, int(w * rng.uniform(0.1, 0.25))), h
    ox = x + int(rng.integers(0, w - bw + 1))
    oy = y + int(rng.integers(0, h - bh + 1))
    image[oy : oy + bh, ox : ox + bw] = _colour(rng, 20, 120)


def _camera_effects(image: Image, rng: np.random.Generator) -> Image:
    if rng.random() < 0.4:
        k = int(rng.choice([3, 5]))
        image = np.asarray(cv2.GaussianBlur(image, (k, k), 0), np.uint8)
    gain = rng.uniform(0.6, 1.3)
    bias = rng.uniform(-25, 25)
    noise = rng.normal(0.0, rng.uniform(1.0, 7.0), image.shape)
    return np.clip(image.astype(np.float32) * gain + bias + noise, 0, 255).astype(np.uint8)
