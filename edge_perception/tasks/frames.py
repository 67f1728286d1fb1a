"""One camera frame as the tasks see it, with the model inputs derived from it.

Several tasks usually watch the same camera. They share one :class:`Frame` per message, so the
detector's input tensor is prepared once per frame instead of once per task. A frame is
read-only: a task that wants to draw on it copies it first.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

from edge_perception.tasks.detector_decoding import detector_input
from edge_perception.tasks.model_spec import Preprocess
from edge_perception.tasks.preprocessing import Geometry, prepare

BgrImage = npt.NDArray[np.uint8]
Array = npt.NDArray[np.float32]


class Frame:
    """A decoded HxWx3 BGR frame; :attr:`detector_input` is computed on first use."""

    def __init__(self, image: BgrImage) -> None:
        image.setflags(write=False)
        self.image = image
        self._detector_input: Array | None = None
        self._inputs: dict[tuple[Preprocess, tuple[int, int]], tuple[Array, Geometry]] = {}
        self._lock = threading.Lock()  # stock multi-threaded executors share frames too

    @property
    def detector_input(self) -> Array:
        with self._lock:
            if self._detector_input is None:
                tensor = detector_input(self.image)
                tensor.setflags(write=False)
                self._detector_input = tensor
            return self._detector_input

    def model_input(self, preprocess: Preprocess, input_hw: tuple[int, int]
                    ) -> tuple[Array, Geometry]:
        """The frame as a declared model input (see tasks.preprocessing), made once per
        frame for every task whose model takes the same input."""
        key = (preprocess, input_hw)
        with self._lock:
            if key not in self._inputs:
                tensor, where = prepare(self.image, input_hw, preprocess)
                tensor.setflags(write=False)
                self._inputs[key] = (tensor, where)
            return self._inputs[key]
