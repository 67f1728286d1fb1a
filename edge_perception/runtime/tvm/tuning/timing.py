"""Timing compiled libraries against each other, taking turns.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tvm

from edge_perception.runtime.tvm.engine import TvmEngine
from edge_perception.runtime.tvm.target import (
    CompileTarget,
)


def seconds_taking_turns(libraries: Sequence[Path], input_shape: tuple[int, ...],
                          target: CompileTarget, function: str | None = None,
                          rounds: int = 15, seconds_per_turn: float = 0.03) -> list[float]:
    """Median seconds per call of each library's model, the libraries taking turns (each
    first in turn) so that all see the same machine state. With ``function`` (a task name),
    only that function's calls inside each model run count (a bytecode VM's instrument)."""
    names = {function, f'{function}_prepacked'}  # as SplitLayoutRewritePreproc renames it
    device = tvm.cuda(0) if target.device == 'cuda' else tvm.cpu(0)
    spent = [0.0, 0.0]  # this call's seconds in the function so far; when its last call began

    def instrument(_function: Any, name: str, before: bool, _result: Any, *_args: Any) -> int:
        if name in names:
            if target.device == 'cuda':
                device.sync()  # kernels are launched asynchronously
            if before:
                spent[1] = time.perf_counter()
            else:
                spent[0] += time.perf_counter() - spent[1]
        return 0  # VMInstrumentReturnKind.NO_OP: run the call as usual

    engines = [TvmEngine(library, device=target.device, input_shape=input_shape,
                         threads=target.num_cores,
                         instrument=None if function is None else instrument)
               for library in libraries]
    inputs = np.random.default_rng(0).uniform(0, 255, input_shape).astype(np.float32)
    start = time.perf_counter()
    engines[0].run(inputs)
    calls = max(1, int(seconds_per_turn / (time.perf_counter() - start)))
    times: list[list[float]] = [[] for _ in engines]
    for turn in range(rounds):
        for index in [(turn + offset) % len(engines) for offset in range(len(engines))]:
            engines[index].run(inputs)  # the first call after another library's warms up
            for _ in range(calls):
                spent[0] = 0.0
                start = time.perf_counter()
                engines[index].run(inputs)
                times[index].append(time.perf_counter() - start if function is None
                                    else spent[0])
    if not all(min(each) > 0 for each in times):
        raise RuntimeError(f'{function} was not called in the model (a bytecode build?)')
    return [float(np.median(each)) for each in times]
