"""The trained networks, each scalable by a width multiplier (the RT-mDL variants).

* :class:`Detector`: a CenterNet-style single-shot detector on 320x240 frames. Output stride 4;
  per cell: 5 class heatmaps (the four light states + one class-agnostic 'sign'), log box size
  and sub-cell centre offset. Lights and signs share this detector, so the sign task finds its
  crops with the same compiled module the light task already holds.
* :class:`CropClassifier`: a small CNN that names what is in a 32x32 crop of a detector's box:
  the sign (``sign_classifier``) or the light's state (``light_state``).

All take raw BGR pixels as float32 NCHW in [0, 255] and normalise inside the graph, so
pre-processing in the nodes is only resize + transpose.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from edge_perception.tasks.classes import DETECTOR_CLASSES

DETECTOR_STRIDE = 4
VARIANT_WIDTHS = {'full': 1.0, 'half': 0.5, 'quarter': 0.25}


def _channels(base: int, width: float) -> int:
    return max(4, round(base * width))


def _conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
    )


class Detector(nn.Module):
    """Heatmap detector: (N, 3, 240, 320) -> (N, 5 + 2 + 2, 60, 80)."""

    def __init__(self, width: float) -> None:
        super().__init__()
        c1, c2, c3 = (_channels(c, width) for c in (16, 32, 64))
        self.stem = _conv_bn(3, c1, stride=2)
        self.down1 = _conv_bn(c1, c2, stride=2)
        self.block1 = _conv_bn(c2, c2)
        self.down2 = _conv_bn(c2, c3, stride=2)
        self.block2 = nn.Sequential(_conv_bn(c3, c3), _conv_bn(c3, c3))
        self.lateral = nn.Conv2d(c3, c2, 1)
        outputs = nn.Conv2d(c2, len(DETECTOR_CLASSES) + 4, 1)
        # Start heatmaps near 0.01 so the focal loss does not explode early (CenterNet's prior).
        nn.init.constant_(cast(torch.Tensor, outputs.bias)[: len(DETECTOR_CLASSES)], -4.6)
        self.head = nn.Sequential(_conv_bn(c2, c2), outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * (1.0 / 255.0) - 0.5
        fine = self.block1(self.down1(self.stem(x)))
        coarse = self.down2(fine)
        coarse = coarse + self.block2(coarse)
        merged = fine + F.interpolate(self.lateral(coarse), scale_factor=2.0, mode='nearest')
        raw = self.head(merged)
        n = len(DETECTOR_CLASSES)
        heat = torch.sigmoid(raw[:, :n])
        offset = torch.sigmoid(raw[:, n + 2 :])
        return torch.cat([heat, raw[:, n : n + 2], offset], dim=1)


class CropClassifier(nn.Module):
    """Crop classifier: (N, 3, 32, 32) -> (N, classes) class probabilities."""

    def __init__(self, width: float, classes: int) -> None:
        super().__init__()
        c1, c2, c3 = (_channels(c, width) for c in (16, 32, 64))
        self.features = nn.Sequential(
            _conv_bn(3, c1), nn.MaxPool2d(2),
            _conv_bn(c1, c2), nn.MaxPool2d(2),
            _conv_bn(c2, c3), nn.MaxPool2d(2),
            _conv_bn(c3, c3),
        )
        self.classify = nn.Linear(c3, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * (1.0 / 255.0) - 0.5
        pooled = self.features(x).mean(dim=(2, 3))
        return torch.softmax(self.classify(pooled), dim=1)
