"""Cutting the classifiers' crops from a frame, the same way in training and in the nodes."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

CROP_SIZE = 32
# Context kept around a sign's box, as a fraction of its size, so small localisation errors
# still leave the whole sign in the crop.
MARGIN = 0.15
# A light's box is often only the lit lamp of a larger housing; its state depends on where
# in the housing the lamp is, so more context is kept above and below than at the sides.
LIGHT_MARGIN_X, LIGHT_MARGIN_Y = 0.2, 0.4


def sign_crop(
    image: npt.NDArray[np.uint8], x: float, y: float, width: float, height: float
) -> npt.NDArray[np.float32]:
    """(3, 32, 32) float32 crop in [0, 255] of the square around a box (aspect kept);
    borders outside the image are black."""
    side = max(width, height) * (1 + 2 * MARGIN)
    cx, cy = x + width / 2, y + height / 2
    return _warp(image, (cx - side / 2, cy - side / 2), (side, side), cv2.BORDER_CONSTANT)


def light_crop(
    image: npt.NDArray[np.uint8], x: float, y: float, width: float, height: float
) -> npt.NDArray[np.float32]:
    """(3, 32, 32) float32 crop in [0, 255] of a light's box with its margins, stretched
    (lights are tall: a square would spend most pixels on background); borders outside the
    image repeat its edge."""
    pad_x, pad_y = width * LIGHT_MARGIN_X, height * LIGHT_MARGIN_Y
    return _warp(image, (x - pad_x, y - pad_y), (width + 2 * pad_x, height + 2 * pad_y),
                 cv2.BORDER_REPLICATE)


def _warp(image: npt.NDArray[np.uint8], corner: tuple[float, float],
          size: tuple[float, float], border: int) -> npt.NDArray[np.float32]:
    # An affine map from the region onto the crop: no copy of the whole frame.
    scale_x, scale_y = CROP_SIZE / max(size[0], 1.0), CROP_SIZE / max(size[1], 1.0)
    matrix = np.array([[scale_x, 0.0, -corner[0] * scale_x], [0.0, scale_y, -corner[1] * scale_y]],
                      dtype=np.float64)
    crop = cv2.warpAffine(image, matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=border, borderValue=(0, 0, 0))
    return np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32)
