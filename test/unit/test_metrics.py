"""AP@0.5 and box IoU on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from edge_perception.tasks.detector_decoding import box_iou
from edge_perception.tasks.metrics import APAccumulator, mean_ap


def test_iou_of_identical_disjoint_and_half_overlapping_boxes() -> None:
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_perfect_detections_give_ap_one() -> None:
    acc = APAccumulator()
    acc.add_frame([(0.9, (0, 0, 10, 10)), (0.8, (50, 50, 10, 10))],
                  [(0, 0, 10, 10), (50, 50, 10, 10)])
    assert acc.average_precision() == pytest.approx(1.0)


def test_false_positive_ranked_first_halves_precision_at_first_recall() -> None:
    acc = APAccumulator()
    # ranked: FP (0.9), TP (0.8) -> recall 1 at precision 1/2
    acc.add_frame([(0.9, (100, 100, 10, 10)), (0.8, (0, 0, 10, 10))], [(0, 0, 10, 10)])
    assert acc.average_precision() == pytest.approx(0.5)


def test_missed_object_caps_recall() -> None:
    acc = APAccumulator()
    acc.add_frame([(0.9, (0, 0, 10, 10))], [(0, 0, 10, 10), (40, 40, 10, 10)])
    assert acc.average_precision() == pytest.approx(0.5)


def test_duplicate_detection_of_one_object_counts_once() -> None:
    acc = APAccumulator()
    acc.add_frame([(0.9, (0, 0, 10, 10)), (0.8, (1, 0, 10, 10))], [(0, 0, 10, 10)])
    assert acc.scored == [(0.9, True), (0.8, False)]


def test_poorly_localised_box_is_a_false_positive() -> None:
    acc = APAccumulator()
    acc.add_frame([(0.9, (6, 0, 10, 10))], [(0, 0, 10, 10)])  # IoU 4/16 < 0.5
    assert acc.average_precision() == 0.0


def test_mean_ap_skips_classes_without_ground_truth() -> None:
    seen, unseen = APAccumulator(), APAccumulator()
    seen.add_frame([(0.9, (0, 0, 10, 10))], [(0, 0, 10, 10)])
    unseen.add_frame([(0.9, (0, 0, 10, 10))], [])
    assert math.isnan(unseen.average_precision())
    assert mean_ap([seen, unseen]) == pytest.approx(1.0)
