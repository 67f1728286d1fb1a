"""Latency of every model variant: TVM vs onnxruntime (the reference), side by side.

Each repeat runs TVM once and onnxruntime once on the same input, so both see the same
machine state; the ratio of their medians is the figure of merit (TVM / onnxruntime,
lower is better, <= 1.0 is the goal).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnxruntime
from tqdm import tqdm

from edge_perception.runtime.tvm_engine import ModelStore


@dataclass(frozen=True)
class LatencyRow:
    model: str
    variant: str
    batch: int
    threads: int
    tvm_p50_ms: float
    tvm_p99_ms: float
    ort_p50_ms: float
    ort_p99_ms: float

    @property
    def ratio(self) -> float:
        return self.tvm_p50_ms / self.ort_p50_ms


def _session(path: str, threads: int) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def measure(store: ModelStore, *, batches: Sequence[int], threads: Sequence[int],
            repeats: int) -> list[LatencyRow]:
    cases = [(model, variant, batch, n_threads)
             for model, entry in sorted(store.manifest.models.items())
             for variant in sorted(entry.variants) for batch in batches for n_threads in threads]
    rows = []
    for model, variant, batch, n_threads in tqdm(cases, desc='model latency'):
        engine = store.engine(model, variant, batch=batch, threads=n_threads)
        session = _session(str(store.manifest.path(model, variant)), n_threads)
        inputs = np.random.default_rng(0).uniform(0, 255, engine.input_shape).astype(np.float32)
        tvm_s, ort_s = [], []
        session.run(None, {'input': inputs})
        for _ in range(repeats):
            start = time.perf_counter()
            engine.run(inputs)
            tvm_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            session.run(None, {'input': inputs})
            ort_s.append(time.perf_counter() - start)
        rows.append(LatencyRow(model, variant, batch, n_threads,
                               *_p50_p99(tvm_s), *_p50_p99(ort_s)))
    return rows


def _p50_p99(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def format_rows(rows: Sequence[LatencyRow]) -> str:
    lines = [f'{"model":<16} {"variant":<8} {"batch":>5} {"thr":>3} {"TVM p50":>9} '
             f'{"TVM p99":>9} {"ORT p50":>9} {"ORT p99":>9} {"TVM/ORT":>8}']
    for r in rows:
        lines.append(f'{r.model:<16} {r.variant:<8} {r.batch:>5} {r.threads:>3} '
                     f'{r.tvm_p50_ms:>9.3f} {r.tvm_p99_ms:>9.3f} {r.ort_p50_ms:>9.3f} '
                     f'{r.ort_p99_ms:>9.3f} {r.ratio:>7.1f}x')
    return '\n'.join(lines)
