"""Decoding Ultralytics-style YOLO outputs: boxes above a score, class-wise NMS.

Exports come in three layouts (nc = number of classes, N = candidate boxes):
``channels_first`` [1, 4+nc, N] (YOLOv8/v11: cx, cy, w, h, then class scores),
``boxes_first`` [1, N, 4+nc] (the same, transposed by some exporters) and
``objectness`` [1, N, 5+nc] (YOLOv5: cx, cy, w, h, objectness, class probabilities; a
box's score is objectness times class probability). Boxes are in model-input pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from edge_perception.tasks.detections import Detection
from edge_perception.tasks.preprocessing import Geometry

Array = npt.NDArray[np.float32]
LAYOUTS = ('channels_first', 'boxes_first', 'objectness')
MAX_CANDIDATES = 1000


def yolo_layout(shape: Sequence[int], num_classes: int) -> str:
    """The layout of an output of ``shape`` for ``num_classes`` classes.

    :raises ValueError: naming the shapes that would fit, when this one does not."""
    fits = []
    if len(shape) == 3 and shape[0] in (1, -1):
        if shape[1] == 4 + num_classes:
            fits.append('channels_first')
        if shape[2] == 5 + num_classes:
            fits.append('objectness')
        elif shape[2] == 4 + num_classes:
            fits.append('boxes_first')
    if len(fits) != 1:
        raise ValueError(
            f'output shape {list(shape)} does not fit a YOLO output with {num_classes} classes: '
            f'expected [1, {4 + num_classes}, N] (YOLOv8/v11) or [1, N, {5 + num_classes}] '
            '(YOLOv5)' + (f'; it fits both {fits}' if fits else ''))
    return fits[0]


def candidates(output: Array, num_classes: int
               ) -> tuple[Array, npt.NDArray[np.int64], Array]:
    """Boxes (N, 4: cx, cy, w, h), best class (N,) and its score (N,) of one image."""
    layout = yolo_layout((1, *output.shape), num_classes)
    rows = output.T if layout == 'channels_first' else output
    boxes = rows[:, :4]
    scores = rows[:, 5:] * rows[:, 4:5] if layout == 'objectness' else rows[:, 4:]
    best = np.argmax(scores, axis=1)
    return boxes, best, scores[np.arange(len(best)), best]


def iou_with(box: Array, others: Array) -> Array:
    """IoU of one (x1, y1, x2, y2) box with each row of ``others``."""
    x1 = np.maximum(box[0], others[:, 0])
    y1 = np.maximum(box[1], others[:, 1])
    x2 = np.minimum(box[2], others[:, 2])
    y2 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return np.asarray(inter / np.maximum(area + areas - inter, 1e-9), np.float32)


def class_wise_nms(corners: Array, classes: npt.NDArray[np.int64], scores: Array, *,
                   iou_threshold: float) -> list[int]:
    """Indices kept, best first: a box is suppressed only by a better one of its class."""
    kept: list[int] = []
    for index in np.argsort(-scores, kind='stable'):
        same = [k for k in kept if classes[k] == classes[index]]
        if not same or iou_with(corners[index], corners[same]).max() <= iou_threshold:
            kept.append(int(index))
    return kept


def decode_yolo(output: Array, classes: Sequence[str], where: Geometry, *,
                score_threshold: float, iou_threshold: float = 0.45,
                max_detections: int = 100) -> list[Detection]:
    """Detections of one image's output (without the batch axis), in frame pixels."""
    boxes, best, scores = candidates(output, len(classes))
    # The best MAX_CANDIDATES above the threshold: NMS time stays bounded on a cluttered frame.
    keep = np.flatnonzero(scores >= score_threshold)
    keep = keep[np.argsort(-scores[keep], kind='stable')[:MAX_CANDIDATES]]
    boxes, best, scores = boxes[keep], best[keep], scores[keep]
    corners = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2,
                              boxes[:, :2] + boxes[:, 2:] / 2], axis=1)
    detections = []
    for index in class_wise_nms(corners, best, scores,
                                iou_threshold=iou_threshold)[:max_detections]:
        x1, y1, x2, y2 = (float(v) for v in corners[index])
        x, y, width, height = where.to_frame(x1, y1, x2 - x1, y2 - y1)
        class_id = int(best[index])
        detections.append(Detection(label=classes[class_id], class_id=class_id,
                                    score=float(scores[index]), x=x, y=y, width=width,
                                    height=height))
    return detections
