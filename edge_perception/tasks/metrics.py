"""Detection and classification accuracy: VOC-style AP at IoU 0.5, and top-1."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from edge_perception.tasks.detector_decoding import Box, box_iou


@dataclass
class MatchCounts:
    """True/false positives and misses at one score threshold, over many frames."""

    true_positives: int = 0
    false_positives: int = 0
    missed: int = 0

    def add_frame(self, detections: Sequence[tuple[str, Box]], truths: Sequence[tuple[str, Box]],
                  *, iou: float = 0.5) -> None:
        """A detection is true when it overlaps an unmatched truth of the same label."""
        matched = [False] * len(truths)
        for label, box in detections:
            candidates = [i for i, (t_label, t_box) in enumerate(truths)
                          if not matched[i] and t_label == label and box_iou(box, t_box) >= iou]
            if candidates:
                matched[candidates[0]] = True
                self.true_positives += 1
            else:
                self.false_positives += 1
        self.missed += matched.count(False)

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else float('nan')

    @property
    def recall(self) -> float:
        present = self.true_positives + self.missed
        return self.true_positives / present if present else float('nan')


@dataclass
class APAccumulator:
    """Collects scored detections and ground truth of one class over many frames."""

    scored: list[tuple[float, bool]] = field(default_factory=list)
    ground_truth: int = 0

    def add_frame(self, detections: Sequence[tuple[float, Box]], truths: Sequence[Box],
                  *, iou: float = 0.5) -> None:
        """Match detections (best score first) greedily to unmatched truths."""
        self.ground_truth += len(truths)
        matched = [False] * len(truths)
        for score, box in sorted(detections, key=lambda d: d[0], reverse=True):
            overlaps = [box_iou(box, t) if not matched[i] else -1.0 for i, t in enumerate(truths)]
            best = int(np.argmax(overlaps)) if overlaps else -1
            hit = best >= 0 and overlaps[best] >= iou
            if hit:
                matched[best] = True
            self.scored.append((score, hit))

    def average_precision(self) -> float:
        """Area under the interpolated precision/recall curve (all points, VOC 2010+)."""
        if self.ground_truth == 0:
            return float('nan')
        order = sorted(self.scored, key=lambda s: s[0], reverse=True)
        hits = np.array([hit for _, hit in order], dtype=np.float64)
        true_pos = np.cumsum(hits)
        recall = np.concatenate([[0.0], true_pos / self.ground_truth, [1.0]])
        precision = np.concatenate([[1.0], true_pos / np.arange(1, len(hits) + 1), [0.0]])
        precision = np.maximum.accumulate(precision[::-1])[::-1]
        steps = np.nonzero(recall[1:] != recall[:-1])[0]
        return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def mean_ap(accumulators: Sequence[APAccumulator]) -> float:
    """Mean AP over classes that have ground truth."""
    values = [a.average_precision() for a in accumulators if a.ground_truth > 0]
    return float(np.mean(values)) if values else float('nan')
