"""Debug images: detections drawn onto the frame (OpenCV)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from edge_perception.tasks.detections import Detection

_COLOURS = {'red': (0, 0, 255), 'yellow': (0, 215, 255), 'green': (0, 200, 0)}


def annotate(image: npt.NDArray[np.uint8],
             detections: Sequence[Detection]) -> npt.NDArray[np.uint8]:
    """A copy of ``image`` with each detection's box, label and score drawn on it."""
    out = image.copy()
    for det in detections:
        colour = _COLOURS.get(det.label, (255, 128, 0))
        top_left = (round(det.x), round(det.y))
        bottom_right = (round(det.x + det.width), round(det.y + det.height))
        cv2.rectangle(out, top_left, bottom_right, colour, 1)
        cv2.putText(out, f'{det.label} {det.score:.2f}', (top_left[0], max(8, top_left[1] - 3)),
                    cv2.FONT_HERSHEY_PLAIN, 0.8, colour, 1, cv2.LINE_AA)
    return out
