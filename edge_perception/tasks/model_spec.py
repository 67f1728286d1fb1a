"""What a pipeline must know about a model it did not train: its kind, input and classes.

A user's model declares these in the manifest (``edge-perception add-model`` writes them);
nothing about a model is assumed from its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# centernet: our heatmap detector; yolo: Ultralytics-style exports; classifier: class scores.
MODEL_KINDS = ('centernet', 'yolo', 'classifier')
RESIZE_MODES = ('letterbox', 'stretch')
CHANNEL_ORDERS = ('rgb', 'bgr')


@dataclass(frozen=True)
class Preprocess:
    """How a BGR camera frame becomes the model's input tensor: resized to the input size
    (``letterbox`` keeps the aspect ratio and pads with ``pad_value``, ``stretch`` does not),
    channels in ``channels`` order, then ``(pixel * scale - mean) / std`` per channel."""

    resize: str = 'stretch'
    channels: str = 'bgr'
    scale: float = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pad_value: int = 114

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(f'resize {self.resize!r} is not one of {list(RESIZE_MODES)}')
        if self.channels not in CHANNEL_ORDERS:
            raise ValueError(f'channels {self.channels!r} is not one of {list(CHANNEL_ORDERS)}')
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f'mean {self.mean} and std {self.std} need 3 values, std > 0')


# Ultralytics exports: RGB in [0, 1], letterboxed with grey (114).
YOLO_PREPROCESS = Preprocess(resize='letterbox', channels='rgb', scale=1 / 255)


@dataclass(frozen=True)
class ModelSpec:
    """A model's kind, input shape (N, 3, H, W), class names and pre-processing."""

    kind: str
    input_shape: tuple[int, ...]
    classes: tuple[str, ...]
    preprocess: Preprocess = field(default_factory=Preprocess)

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the input image."""
        return self.input_shape[2], self.input_shape[3]
