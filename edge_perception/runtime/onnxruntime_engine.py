"""An ONNX model run by onnxruntime: the :class:`InferenceEngine` of a model that has no
tuned TVM build on this machine yet (untuned TVM builds run a new model up to ~90x slower).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime

from edge_perception.runtime.manifest import ModelLoadError


class OnnxRuntimeEngine:
    """One onnxruntime session with ``threads`` intra-op threads, as a TVM lane has; a
    batch runs sample by sample when the model's batch axis is fixed at 1."""

    def __init__(self, model: onnx.ModelProto, *, name: str, input_shape: tuple[int, ...],
                 device: str = 'cpu', threads: int = 1) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # The lane thread waits for the result; spinning pool threads would take its core.
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        providers = ['CPUExecutionProvider']
        if device == 'cuda' and 'CUDAExecutionProvider' in onnxruntime.get_available_providers():
            providers.insert(0, 'CUDAExecutionProvider')
        try:
            self._session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                                         providers=providers)
        except Exception as err:  # onnxruntime raises its own exception types
            raise ModelLoadError(f'onnxruntime cannot load {name}: {err}') from None
        declared = self._session.get_inputs()[0].shape
        self._per_sample = input_shape[0] > 1 and declared[0] == 1
        self._input_name = self._session.get_inputs()[0].name
        self._output_name = self._session.get_outputs()[0].name
        self._lock = threading.Lock()
        self.name = name
        self.device = 'cuda' if providers[0].startswith('CUDA') else 'cpu'
        self.input_shape = input_shape
        self.latency_ns: int | None = None

    def run(self, inputs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if inputs.shape != self.input_shape:
            raise ValueError(f'{self.name}: input shape {inputs.shape}, '
                             f'expected {self.input_shape}')
        with self._lock:
            start = time.perf_counter_ns()
            if self._per_sample:
                output = np.concatenate([self._call(inputs[i:i + 1])
                                         for i in range(len(inputs))])
            else:
                output = self._call(inputs)
            spent = time.perf_counter_ns() - start
            self.latency_ns = spent if self.latency_ns is None else (
                self.latency_ns * 3 + spent) // 4
            return output

    def _call(self, inputs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        [output] = self._session.run([self._output_name], {self._input_name: inputs})
        return np.asarray(output, dtype=np.float32)
