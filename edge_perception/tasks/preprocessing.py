"""A camera frame into a declared model input, and model boxes back into frame pixels."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_perception.core.aligned_arrays import aligned_empty
from edge_perception.tasks.model_spec import Preprocess

Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Geometry:
    """Where the frame landed in the model input: input = frame * scale + pad."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float

    def to_frame(self, x: float, y: float, width: float, height: float
                 ) -> tuple[float, float, float, float]:
        """A box in model-input pixels as a box in frame pixels."""
        return ((x - self.pad_x) / self.scale_x, (y - self.pad_y) / self.scale_y,
                width / self.scale_x, height / self.scale_y)


def geometry(frame_hw: tuple[int, int], input_hw: tuple[int, int], resize: str) -> Geometry:
    (frame_h, frame_w), (input_h, input_w) = frame_hw, input_hw
    if resize == 'stretch':
        return Geometry(input_w / frame_w, input_h / frame_h, 0.0, 0.0)
    scale = min(input_w / frame_w, input_h / frame_h)
    return Geometry(scale, scale, (input_w - round(frame_w * scale)) // 2,
                    (input_h - round(frame_h * scale)) // 2)


def prepare(image: npt.NDArray[np.uint8], input_hw: tuple[int, int],
            preprocess: Preprocess) -> tuple[Array, Geometry]:
    """BGR HxWx3 uint8 -> (1, 3, H, W) float32 as ``preprocess`` declares, and its geometry."""
    where = geometry(image.shape[:2], input_hw, preprocess.resize)
    input_h, input_w = input_hw
    size = (round(image.shape[1] * where.scale_x), round(image.shape[0] * where.scale_y))
    resized = image if size == (image.shape[1], image.shape[0]) else np.asarray(
        cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), np.uint8)
    if preprocess.resize == 'letterbox':
        canvas = np.full((input_h, input_w, 3), preprocess.pad_value, np.uint8)
        x, y = int(where.pad_x), int(where.pad_y)
        canvas[y:y + size[1], x:x + size[0]] = resized
        resized = canvas
    if preprocess.channels == 'rgb':
        resized = resized[..., ::-1]
    tensor = aligned_empty((1, 3, input_h, input_w))
    tensor[0] = resized.transpose(2, 0, 1)
    if preprocess.scale != 1.0:
        tensor *= np.float32(preprocess.scale)
    if any(preprocess.mean) or any(s != 1.0 for s in preprocess.std):
        mean = np.asarray(preprocess.mean, np.float32)[:, None, None]
        std = np.asarray(preprocess.std, np.float32)[:, None, None]
        tensor[0] = (tensor[0] - mean) / std
    return tensor, where
