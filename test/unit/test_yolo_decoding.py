"""YOLO outputs of every export layout decode to the same boxes; pre-processing as declared."""

from __future__ import annotations

import numpy as np
import pytest

from edge_perception.tasks.model_spec import YOLO_PREPROCESS, Preprocess
from edge_perception.tasks.preprocessing import Geometry, geometry, prepare
from edge_perception.tasks.yolo_decoding import decode_yolo, yolo_layout

CLASSES = ('cone', 'car')
IDENTITY = Geometry(1.0, 1.0, 0.0, 0.0)
# Four candidates (cx, cy, w, h, score cone, score car): two overlapping cones, a car on the
# first cone (another class: kept) and a weak cone under the threshold.
ROWS = np.array([[50, 50, 20, 20, 0.9, 0.1],
                 [52, 50, 20, 20, 0.8, 0.1],
                 [50, 50, 20, 20, 0.05, 0.7],
                 [10, 10, 4, 4, 0.1, 0.0]], np.float32)


def expected() -> list[tuple[str, float, tuple[float, float, float, float]]]:
    return [('cone', 0.9, (40.0, 40.0, 20.0, 20.0)), ('car', 0.7, (40.0, 40.0, 20.0, 20.0))]


def summary(output: np.ndarray) -> list[tuple[str, float, tuple[float, float, float, float]]]:
    return [(d.label, round(d.score, 3), (d.x, d.y, d.width, d.height))
            for d in decode_yolo(output, CLASSES, IDENTITY, score_threshold=0.25)]


def test_v8_channels_first_output() -> None:
    assert summary(ROWS.T.copy()) == expected()  # [4 + nc, N]


def test_transposed_v8_output() -> None:
    assert summary(ROWS) == expected()  # [N, 4 + nc]


def test_v5_output_scores_objectness_times_class() -> None:
    objectness = np.array([[1.0], [1.0], [1.0], [1.0]], np.float32)
    v5 = np.concatenate([ROWS[:, :4], objectness, ROWS[:, 4:]], axis=1)
    assert summary(v5) == expected()
    v5[:, 4] = 0.5  # halves every score
    assert [(label, score) for label, score, _ in summary(v5)] == [('cone', 0.45),
                                                                   ('car', 0.35)]


def test_layouts_are_named_and_a_misfit_says_what_would_fit() -> None:
    assert yolo_layout((1, 84, 8400), 80) == 'channels_first'
    assert yolo_layout((1, 25200, 85), 80) == 'objectness'
    assert yolo_layout((1, 8400, 84), 80) == 'boxes_first'
    with pytest.raises(ValueError, match=r'output shape \[1, 6, 8400\] does not fit a YOLO '
                                         r'output with 3 classes: expected \[1, 7, N\]'):
        yolo_layout((1, 6, 8400), 3)


def test_letterboxed_boxes_come_back_in_frame_pixels() -> None:
    where = geometry((480, 640), (320, 320), 'letterbox')
    assert where == Geometry(0.5, 0.5, 0.0, 40.0)
    rows = np.array([[160, 160, 40, 20, 0.9, 0.0]], np.float32)
    [cone] = decode_yolo(rows, CLASSES, where, score_threshold=0.25)
    assert (cone.x, cone.y, cone.width, cone.height) == (280.0, 220.0, 80.0, 40.0)


def test_prepare_letterboxes_converts_to_rgb_and_scales() -> None:
    image = np.zeros((2, 4, 3), np.uint8)
    image[..., 2] = 255  # red in BGR
    tensor, where = prepare(image, (4, 4), YOLO_PREPROCESS)
    assert tensor.shape == (1, 3, 4, 4)
    assert where == Geometry(1.0, 1.0, 0.0, 1.0)
    assert tensor[0, :, 0, 0].tolist() == pytest.approx([114 / 255] * 3)  # padding row
    assert tensor[0, :, 1, 0].tolist() == [1.0, 0.0, 0.0]  # the image: R first


def test_prepare_normalises_with_mean_and_std() -> None:
    image = np.full((2, 2, 3), 255, np.uint8)
    spec = Preprocess(channels='bgr', scale=1 / 255, mean=(0.5, 0.5, 0.5), std=(0.5, 1.0, 2.0))
    tensor, _ = prepare(image, (2, 2), spec)
    assert tensor[0, :, 0, 0].tolist() == [1.0, 0.5, 0.25]


def test_a_bad_preprocess_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"resize 'crop' is not one of"):
        Preprocess(resize='crop')
