"""Pre- and post-processing of the shared heatmap detector (numpy/OpenCV only)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge_perception.core.aligned_arrays import aligned_empty

INPUT_WIDTH = 320
INPUT_HEIGHT = 240
STRIDE = 4

Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Peak:
    """One heatmap peak as a box in the original image's pixels."""

    channel: int
    score: float
    x: float
    y: float
    width: float
    height: float


def detector_input(image: npt.NDArray[np.uint8]) -> Array:
    """BGR HxWx3 uint8 -> (1, 3, 240, 320) float32 in [0, 255], resizing when needed."""
    if image.shape[:2] != (INPUT_HEIGHT, INPUT_WIDTH):
        image = np.asarray(
            cv2.resize(image, (INPUT_WIDTH, INPUT_HEIGHT), interpolation=cv2.INTER_AREA), np.uint8
        )
    tensor = aligned_empty((1, 3, INPUT_HEIGHT, INPUT_WIDTH))
    tensor[...] = image.transpose(2, 0, 1)[None]
    return tensor


def decode_peaks(
    output: Array,
    *,
    channels: tuple[int, ...],
    image_width: int,
    image_height: int,
    threshold: float,
    max_peaks: int = 20,
    overlap_iou: float = 0.5,
    stride: float = STRIDE,
) -> list[Peak]:
    """Local maxima of the given heatmap ``channels`` of one (C, h, w) output, best first.

    Boxes are scaled back from the network input (``stride`` times the map, 320x240 for
    ours) to the original image size. Of two
    peaks whose boxes overlap by more than ``overlap_iou`` (e.g. one light seen as both 'red'
    and 'off'), only the stronger is kept.
    """
    n_classes = output.shape[0] - 4
    log_w, log_h = output[n_classes], output[n_classes + 1]
    off_x, off_y = output[n_classes + 2], output[n_classes + 3]
    sx = image_width / (output.shape[2] * stride)
    sy = image_height / (output.shape[1] * stride)
    # All channels in one pass, channels last: every NumPy or OpenCV call on a whole map lets
    # another thread take the GIL, and the lane then waits to get it back (a per-channel
    # loop made 20 such calls for the four light states, this makes 5).
    heat = np.ascontiguousarray(np.moveaxis(output[list(channels)], 0, -1), dtype=np.float32)
    floor = cv2.dilate(heat, np.ones((3, 3), np.uint8)).reshape(heat.shape)
    np.maximum(floor, threshold, out=floor)
    rows, cols, picks = np.nonzero(heat >= floor)
    found = sorted(zip(rows.tolist(), cols.tolist(), picks.tolist(), strict=True),
                   key=lambda p: (-heat[p[0], p[1], p[2]], p[2], p[0], p[1]))
    peaks: list[Peak] = []
    for iy, ix, pick in found:
        width = float(np.exp(np.clip(log_w[iy, ix], -3.0, 6.0))) * stride
        height = float(np.exp(np.clip(log_h[iy, ix], -3.0, 6.0))) * stride
        cx = (ix + float(off_x[iy, ix])) * stride
        cy = (iy + float(off_y[iy, ix])) * stride
        peaks.append(Peak(
            channel=channels[pick],
            score=float(heat[iy, ix, pick]),
            x=(cx - width / 2) * sx,
            y=(cy - height / 2) * sy,
            width=width * sx,
            height=height * sy,
        ))
    kept: list[Peak] = []
    for peak in peaks:
        if all(box_iou(_box(peak), _box(other)) <= overlap_iou for other in kept):
            kept.append(peak)
            if len(kept) == max_peaks:
                break
    return kept


Box = tuple[float, float, float, float]


def _box(peak: Peak) -> Box:
    return peak.x, peak.y, peak.width, peak.height


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, width, height) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
