"""Heatmap decoding: peaks become boxes in original-image pixels; overlaps are merged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_perception.tasks.detector_decoding import (
    STRIDE,
    aligned_empty,
    decode_peaks,
    detector_input,
)


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


def _local_maxima(heat: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    """(row, column) of every cell at least the threshold and each of its neighbours."""
    rows, cols = heat.shape
    return {(y, x) for y in range(rows) for x in range(cols)
            if heat[y, x] >= threshold and all(
                heat[y, x] >= heat[ny, nx]
                for ny in range(max(0, y - 1), min(rows, y + 2))
                for nx in range(max(0, x - 1), min(cols, x + 2)))}


def test_every_local_maximum_of_every_channel_is_found_strongest_first() -> None:
    """Coarse random maps (ties and plateaus included) against a plain loop over cells;
    a peak's box is 4 px wide at the cell, so its position gives the cell back."""
    rng = np.random.default_rng(7)
    out = np.zeros((9, 60, 80), np.float32)
    out[:5] = rng.integers(0, 6, size=(5, 60, 80)) / 5
    channels = (3, 0, 2)
    peaks = decode_peaks(out, channels=channels, image_width=320, image_height=240,
                         threshold=0.4, max_peaks=10_000, overlap_iou=1.0)
    found = [(p.channel, round((p.y + 2) / STRIDE), round((p.x + 2) / STRIDE)) for p in peaks]
    expected = {(channel, y, x) for channel in channels
                for y, x in _local_maxima(out[channel], 0.4)}
    assert len(found) == len(expected) > 100
    assert set(found) == expected
    assert [p.score for p in peaks] == sorted((p.score for p in peaks), reverse=True)
    assert all(p.score == out[p.channel, y, x] for p, (_, y, x) in zip(peaks, found, strict=True))


def test_detector_input_resizes_and_transposes() -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    image[..., 2] = 200
    tensor = detector_input(image)
    assert tensor.shape == (1, 3, 240, 320)
    assert tensor.dtype == np.float32
    assert float(tensor[0, 2].mean()) == pytest.approx(200)
    assert tensor.flags.c_contiguous


@pytest.mark.parametrize('shape', [(1, 3, 240, 320), (7,), (2, 5)])
def test_inputs_start_on_a_64_byte_boundary(shape: tuple[int, ...]) -> None:
    """So that TVM reads them in place (it copies misaligned memory)."""
    for _ in range(5):  # several allocations: malloc's own offset varies
        array = aligned_empty(shape)
        assert array.shape == shape
        assert array.dtype == np.float32
        assert array.ctypes.data % 64 == 0
    assert detector_input(np.zeros((240, 320, 3), np.uint8)).ctypes.data % 64 == 0
