"""The lights task: the detector locates each light, the light-state classifier names it
from the light's crop (not the heatmap's channel)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_perception.tasks.classes import LIGHT_STATES
from edge_perception.tasks.crops import CROP_SIZE, LIGHT_MARGIN_X, LIGHT_MARGIN_Y, light_crop
from edge_perception.tasks.detector_decoding import STRIDE
from edge_perception.tasks.frames import Frame
from edge_perception.tasks.pipelines import TrafficLightPipeline, run_pipeline


def detector_output(cells: list[tuple[int, int]], channel: int) -> np.ndarray:
    """Heatmap peaks of one state channel at ``cells`` (row, column), 12x30 px boxes."""
    out = np.zeros((1, 9, 60, 80), np.float32)
    for iy, ix in cells:
        out[0, channel, iy, ix] = 0.8
        out[0, 5, iy, ix] = math.log(12 / STRIDE)
        out[0, 6, iy, ix] = math.log(30 / STRIDE)
    return out


def test_the_classifier_names_the_state_of_each_light() -> None:
    calls: list[tuple[str, tuple[int, ...]]] = []
    green = np.array([[0.05, 0.05, 0.1, 0.8]], np.float32)

    def infer(model: str, inputs: np.ndarray) -> np.ndarray:
        calls.append((model, inputs.shape))
        return detector_output([(10, 10), (30, 50)], LIGHT_STATES.index('red')) \
            if model == 'detector' else green

    lights = run_pipeline(TrafficLightPipeline(), infer,
                          Frame(np.zeros((240, 320, 3), np.uint8)))
    assert [light.label for light in lights] == ['green', 'green']  # the heatmap said red
    assert all(light.class_id == 3 for light in lights)
    assert [light.score for light in lights] == pytest.approx([0.8 * 0.8] * 2)
    assert calls[1:] == [('light_state', (1, 3, CROP_SIZE, CROP_SIZE))] * 2


def test_classifier_calls_are_bounded_by_max_lights() -> None:
    cells = [(10, 5 + 8 * i) for i in range(9)]
    asked = []

    def infer(model: str, inputs: np.ndarray) -> np.ndarray:
        asked.append(model)
        red = np.eye(4, dtype=np.float32)[1:2]
        return detector_output(cells, 1) if model == 'detector' else red

    lights = run_pipeline(TrafficLightPipeline(max_lights=4), infer,
                          Frame(np.zeros((240, 320, 3), np.uint8)))
    assert len(lights) == 4
    assert asked.count('light_state') == 4


def test_a_light_crop_keeps_the_housing_around_the_box() -> None:
    image = np.zeros((240, 320, 3), np.uint8)
    image[100:130, 200:212] = (0, 0, 255)  # the box: 12 x 30 px, red
    crop = light_crop(image, 200, 100, 12, 30)
    assert crop.shape == (3, CROP_SIZE, CROP_SIZE)
    # The box fills the middle, the margins (a fraction of the box each side) the rest.
    inner_x = CROP_SIZE / (1 + 2 * LIGHT_MARGIN_X)
    inner_y = CROP_SIZE / (1 + 2 * LIGHT_MARGIN_Y)
    red = crop[2] > 128
    assert red.sum() == pytest.approx(inner_x * inner_y, rel=0.25)
    assert red[CROP_SIZE // 2, CROP_SIZE // 2]
    assert not red[1, CROP_SIZE // 2]
    assert not red[CROP_SIZE // 2, 1]
