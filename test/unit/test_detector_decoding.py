"""Heatmap decoding: peaks become boxes in original-image pixels; overlaps are merged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_perception.tasks.detector_decoding import STRIDE, decode_peaks, detector_input


def output_with_peak(channel: int, iy: int, ix: int, *, width: float, height: float,
                     score: float = 0.9) -> np.ndarray:
    out = np.zeros((9, 60, 80), np.float32)
    out[channel, iy, ix] = score
    out[5, iy, ix] = math.log(width / STRIDE)
    out[6, iy, ix] = math.log(height / STRIDE)
    out[7, iy, ix] = 0.5
    out[8, iy, ix] = 0.25
    return out


def test_single_peak_decodes_to_its_box() -> None:
    out = output_with_peak(2, iy=10, ix=20, width=12, height=30)
    (peak,) = decode_peaks(out, channels=(0, 1, 2, 3), image_width=320, image_height=240,
                           threshold=0.3)
    assert peak.channel == 2
    assert peak.score == pytest.approx(0.9)
    assert (peak.x, peak.y) == pytest.approx((20.5 * 4 - 6, 10.25 * 4 - 15))
    assert (peak.width, peak.height) == pytest.approx((12, 30))


def test_boxes_scale_to_the_original_image_size() -> None:
    out = output_with_peak(0, iy=10, ix=20, width=12, height=30)
    (peak,) = decode_peaks(out, channels=(0,), image_width=640, image_height=480,
                           threshold=0.3)
    assert (peak.width, peak.height) == pytest.approx((24, 60))


def test_weak_and_unrequested_channels_are_ignored() -> None:
    out = output_with_peak(4, iy=10, ix=20, width=12, height=12)
    out[1, 30, 30] = 0.2
    assert decode_peaks(out, channels=(0, 1, 2, 3), image_width=320, image_height=240,
                        threshold=0.3) == []


def test_same_object_in_two_state_channels_is_reported_once() -> None:
    out = output_with_peak(1, iy=10, ix=20, width=12, height=30, score=0.8)
    out[0, 10, 20] = 0.5
    peaks = decode_peaks(out, channels=(0, 1), image_width=320, image_height=240,
                         threshold=0.3)
    assert [(p.channel, round(p.score, 2)) for p in peaks] == [(1, 0.8)]


def test_detector_input_resizes_and_transposes() -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    image[..., 2] = 200
    tensor = detector_input(image)
    assert tensor.shape == (1, 3, 240, 320)
    assert tensor.dtype == np.float32
    assert float(tensor[0, 2].mean()) == pytest.approx(200)
