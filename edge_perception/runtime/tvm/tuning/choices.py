"""Build choices a tuning run records per database: serial loops, a fused input preparation.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import onnx

from edge_perception.runtime.tvm.database import (
    write_build_option,
)
from edge_perception.runtime.tvm.lowering import (
    compile_onnx,
)
from edge_perception.runtime.tvm.target import (
    CompileTarget,
)
from edge_perception.runtime.tvm.tuning.timing import seconds_taking_turns


def choose_loops(model: onnx.ModelProto, database: Path, *, input_shape: tuple[int, ...],
                 target: CompileTarget, on_build: Callable[[], None] = lambda: None) -> str:
    """Build the model with ``database``'s records as tuned (parallel outer loops) and with
    those loops serial, time whole calls of both taking turns, and record in the database
    which the model's builds use (see :func:`serial_loops`); returns a line for the report.
    Whole calls, each library's back to back: timed kernel by kernel (the instrument adds a
    Python call between kernels), the two did not differ the way whole calls did."""
    parallel_seconds, serial_seconds = _two_builds(
        model, database, input_shape=input_shape, target=target, on_build=on_build,
        builds=((False, None), (True, None)))
    serial = serial_seconds < parallel_seconds * 0.995  # beyond the timing noise
    write_build_option(database, 'serial_loops', serial)
    return (f'loops: parallel {parallel_seconds * 1e3:.3f} ms, serial '
            f'{serial_seconds * 1e3:.3f} ms a call: {"serial" if serial else "parallel"} kept')


def choose_prologue(model: onnx.ModelProto, database: Path, *, input_shape: tuple[int, ...],
                    target: CompileTarget, on_build: Callable[[], None] = lambda: None) -> str:
    """Build the model with the input's preparation fused into the first convolution (see
    :func:`fuse_input_prologue`) and apart, time whole calls taking turns, and record in
    the database which its builds use; returns a line for the report.
    Measurements: docs/design/tvm.md."""
    fused_seconds, apart_seconds = _two_builds(
        model, database, input_shape=input_shape, target=target, on_build=on_build,
        builds=((None, True), (None, False)))
    fused = not apart_seconds < fused_seconds * 0.995  # beyond the timing noise
    write_build_option(database, 'input_prologue', fused)
    return (f'input preparation: fused {fused_seconds * 1e3:.3f} ms, apart '
            f'{apart_seconds * 1e3:.3f} ms a call: {"fused" if fused else "apart"} kept')


def _two_builds(model: onnx.ModelProto, database: Path, *, input_shape: tuple[int, ...],
                target: CompileTarget, on_build: Callable[[], None],
                builds: tuple[tuple[bool | None, bool | None], ...]) -> list[float]:
    """Seconds a whole call of the model built with ``database`` and each of ``builds``
    ((serial, prologue) as :func:`compile_onnx` takes them), timed taking turns."""

    with tempfile.TemporaryDirectory(prefix='choice-') as scratch:
        libraries = [Path(scratch) / f'{number}.so' for number in range(len(builds))]
        for library, (serial, prologue) in zip(libraries, builds, strict=True):
            compile_onnx(model, library, input_shape=input_shape, target=target,
                         databases=[database], serial=serial, prologue=prologue)
            on_build()
        return seconds_taking_turns(libraries, input_shape, target, rounds=30)

