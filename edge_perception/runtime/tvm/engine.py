"""A compiled library loaded into a Relax VM on one device: the :class:`InferenceEngine`
the lanes run.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tvm
from tvm import relax

from edge_perception.core.aligned_arrays import INPUT_ALIGNMENT
from edge_perception.runtime.manifest import ModelLoadError, file_sha256
from edge_perception.runtime.tvm.library_file import recorded_sha256
from edge_perception.runtime.tvm.target import (
    check_runs_here,
)


def _bound_tvm_threads() -> None:
    """Set ``TVM_NUM_THREADS`` to the CPUs this process may use, unless the user set it
    (or ``OMP_NUM_THREADS``). Without it every kernel re-reads the online CPUs (three system
    calls a kernel); set once, before any lane thread runs TVM, since changing the
    environment while another thread reads it is not safe. Measurements: docs/design/tvm.md."""
    if 'TVM_NUM_THREADS' not in os.environ and 'OMP_NUM_THREADS' not in os.environ:
        os.environ['TVM_NUM_THREADS'] = str(len(os.sched_getaffinity(0)))
    # A lane thread's first TVM call starts a pool of workers that call sched_yield 300,000
    # times before they sleep; started from a SCHED_FIFO lane they inherit its policy, and
    # there sched_yield does not let normal threads run: the core they land on stalled for
    # ~60 ms (the executor benchmark's first frames). Our lanes run one thread each, so the
    # workers never get work: let them sleep at once.
    os.environ.setdefault('TVM_THREAD_POOL_SPIN_COUNT', '0')


_bound_tvm_threads()



class TvmEngine:
    """A loaded TVM library bound to a device; implements :class:`InferenceEngine`."""

    def __init__(self, library: Path, *, device: str, input_shape: tuple[int, ...],
                 threads: int = 1, instrument: Callable[..., int] | None = None,
                 per_sample: bool = False) -> None:
        """``instrument``: called before and after each kernel call of a bytecode build (see
        ``relax.VirtualMachine.set_instrument``), for timing kernels inside the model.
        ``per_sample``: the library takes one sample and :meth:`run` calls it once for each
        sample of ``input_shape``'s batch (how the CPU runs a batch, see
        :meth:`ModelStore.compiled_batch`)."""
        expected = recorded_sha256(library)
        if file_sha256(library) != expected:
            raise ModelLoadError(f'Compiled library {library} does not match its SHA-256 record')
        check_runs_here(library)
        try:
            executable = tvm.runtime.load_module(str(library))
        except Exception as err:
            raise ModelLoadError(f'Cannot load compiled library {library}: {err}') from None
        self._device = tvm.cuda(0) if device == 'cuda' else tvm.cpu(0)
        self._vm = relax.VirtualMachine(executable, self._device)
        if instrument is not None:
            self._vm.set_instrument(instrument)
        self._main = self._vm['main']
        # Filled in place for every call: allocating a tensor per call cost ~25 us, a fifth of
        # the smallest classifier's whole run (151 -> 127 us). On the CPU through a NumPy view
        # of it, and outputs are viewed the same way: copyfrom() and .numpy() took 5.4 and
        # 12 us of the 78 us a classifier call cost, np.copyto and np.from_dlpack 0.4 and 1.
        self._per_sample = per_sample
        self._input = tvm.runtime.empty((1, *input_shape[1:]) if per_sample else input_shape,
                                        'float32', self._device)
        self._input_view = np.from_dlpack(self._input) if device == 'cpu' else None
        self._threads = threads
        self._configured = threading.local()
        self._lock = threading.Lock()  # a Relax VM is not thread-safe
        self.latency_ns: int | None = None
        self.device = device
        self.input_shape = input_shape
        self.library = library

    def run(self, inputs: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if inputs.shape != self.input_shape:
            raise ValueError(f'{self.library.name}: input shape {inputs.shape}, '
                             f'expected {self.input_shape}')
        if not getattr(self._configured, 'done', False):
            # TVM's CPU thread pool is per calling thread: size it once per lane thread. Sizing
            # it also pins the caller to one core; restore the lane's own CPU set after.
            allowed = os.sched_getaffinity(0)
            tvm.get_global_func('runtime.config_threadpool')(0, self._threads)
            os.sched_setaffinity(0, allowed)
            self._configured.done = True
        with self._lock:
            start = time.perf_counter_ns()
            if self._per_sample:
                output = np.concatenate([self._call(inputs[i:i + 1]) for i in range(len(inputs))])
            else:
                output = self._call(inputs)
            spent = time.perf_counter_ns() - start
            # Smoothed, so one slow run (a page fault, a busy core) does not stop packing.
            self.latency_ns = spent if self.latency_ns is None else (
                self.latency_ns * 3 + spent) // 4
            return np.asarray(output, dtype=np.float32)  # no copy: already float32

    def _call(self, inputs: npt.NDArray[np.float32]) -> Any:
        if self._input_view is not None:
            tensor = in_place_tensor(inputs)
            if tensor is None:
                copy_holding_gil(self._input_view, inputs)
                tensor = self._input
            # A fresh tensor each call (the VM never reuses a returned one): safe to view.
            return np.from_dlpack(self._main(tensor))
        self._input.copyfrom(np.ascontiguousarray(inputs, dtype=np.float32))
        return self._main(self._input).numpy()


_IN_PLACE_MIN_BYTES = 64 * 1024


def in_place_tensor(inputs: npt.NDArray[Any]) -> Any:
    """``inputs`` as a CPU TVM tensor sharing its memory, or None where TVM cannot read it in
    place (not float32, not C-contiguous, not 64-byte aligned: see ``aligned_empty``) or a
    copy is cheaper (under 64 kB). Reading a large input where it lies saves the copy and the
    cache it evicts. Measurements: docs/design/tvm.md."""
    if (inputs.nbytes < _IN_PLACE_MIN_BYTES or inputs.dtype != np.float32
            or not inputs.flags.c_contiguous):
        return None
    interface = inputs.__array_interface__
    address = interface['data'][0]
    if address % INPUT_ALIGNMENT:
        return None
    if not inputs.flags.writeable:
        # TVM's DLPack import predates the read-only flag and refuses read-only arrays (a
        # shared frame's input is one); the VM's kernels never write their inputs.
        interface['data'] = (address, False)
        inputs = np.asarray(_ArrayInterface(inputs, interface))
    return tvm.runtime.from_dlpack(inputs)


class _ArrayInterface:
    """Memory described by NumPy's array interface; holds ``owner`` so that an array made
    from it keeps the memory alive."""

    def __init__(self, owner: npt.NDArray[Any], interface: dict[str, Any]) -> None:
        self.owner = owner
        self.__array_interface__ = interface


def copy_holding_gil(target: npt.NDArray[Any], source: npt.NDArray[Any]) -> None:
    """``target[...] = source`` without letting the GIL go: NumPy releases it for large
    copies, and a lane then waits to get it back behind the spinning thread and the other
    lane. A memoryview copy is a plain memcpy under the GIL, as fast; NumPy still copies what
    needs converting (another dtype, not contiguous). Measurements: docs/design/tvm.md."""
    if source.dtype == target.dtype and source.flags.c_contiguous:
        target.data.cast('B')[:] = source.data.cast('B')
    else:
        np.copyto(target, source)

