"""The value every task's post-processing produces, whatever it detects."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Detection:
    """One detected object: its class and an axis-aligned box in input-image pixels."""

    label: str
    class_id: int
    score: float
    x: float
    y: float
    width: float
    height: float
