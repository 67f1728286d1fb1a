"""The procedural data generator: deterministic, disjoint splits, exact labels."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from edge_perception.synthetic.scenes import FRAME_HEIGHT, FRAME_WIDTH, generate_frame
from edge_perception.tasks.classes import LIGHT_STATES, SIGN_CLASSES


def test_same_split_and_index_give_the_same_frame() -> None:
    a, b = generate_frame('train', 5), generate_frame('train', 5)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.objects == b.objects


def test_splits_differ() -> None:
    assert not np.array_equal(generate_frame('train', 0).image, generate_frame('test', 0).image)


def test_unknown_split_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown split 'holdout'"):
        generate_frame('holdout', 0)


def test_labels_are_inside_the_frame_and_cover_every_class() -> None:
    labels: Counter[str] = Counter()
    for index in range(120):
        frame = generate_frame('val', index)
        assert frame.image.shape == (FRAME_HEIGHT, FRAME_WIDTH, 3)
        for obj in frame.objects:
            assert obj.x >= 0
            assert obj.x + obj.width <= FRAME_WIDTH
            assert obj.y >= 0
            assert obj.y + obj.height <= FRAME_HEIGHT
            labels[obj.label] += 1
    assert set(labels) == set(LIGHT_STATES) | set(SIGN_CLASSES)


def test_lit_lamp_is_visible_in_the_pixels() -> None:
    """A red light's top third is redder than its bottom third (labels match pixels)."""
    for index in range(200):
        frame = generate_frame('val', index)
        for obj in frame.objects:
            if obj.label == 'red' and obj.height >= 40:
                x, y, w, h = (int(v) for v in (obj.x, obj.y, obj.width, obj.height))
                patch = frame.image[y : y + h, x : x + w].astype(float)
                top, bottom = patch[: h // 3], patch[2 * h // 3 :]
                assert top[..., 2].max() > bottom[..., 2].max()
                return
    pytest.fail('no large red light in 200 frames')
