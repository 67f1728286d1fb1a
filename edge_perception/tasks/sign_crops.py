"""Cutting sign crops for the classifier, the same way in training and in the node."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

CROP_SIZE = 32
# Context kept around the box, as a fraction of its size, so small localisation errors
# still leave the whole sign in the crop.
MARGIN = 0.15


def sign_crop(
    image: npt.NDArray[np.uint8], x: float, y: float, width: float, height: float
) -> npt.NDArray[np.float32]:
    """(3, 32, 32) float32 crop in [0, 255] around a box; borders outside the image are black."""
    side = max(width, height) * (1 + 2 * MARGIN)
    cx, cy = x + width / 2, y + height / 2
    scale = CROP_SIZE / max(side, 1.0)
    # Affine map from the square around the box onto the crop: no copy of the whole frame.
    matrix = np.array(
        [[scale, 0.0, CROP_SIZE / 2 - cx * scale], [0.0, scale, CROP_SIZE / 2 - cy * scale]],
        dtype=np.float64,
    )
    crop = cv2.warpAffine(image, matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return np.ascontiguousarray(crop.transpose(2, 0, 1), dtype=np.float32)
