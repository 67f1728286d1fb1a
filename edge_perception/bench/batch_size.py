"""Latency vs batch size, and the batch Kum et al.'s frame-budget rule picks from it.

Per model variant, each batch size is run in turn on the same random input; per-frame
latency = batch latency / batch size shows what batching buys on this device, and
:func:`core.batching.frame_budget_batch` turns the measured latencies into the batch size a
camera stream should use (largest batch that keeps up and keeps its deadline).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from edge_perception.core.batching import frame_budget_batch
from edge_perception.figures import pyplot, save
from edge_perception.runtime.engine import median_latency_ns
from edge_perception.runtime.tvm.store import ModelStore
from edge_perception.runtime.tvm.target import CompileTarget


@dataclass(frozen=True)
class BatchCurve:
    model: str
    variant: str
    latency_ms: dict[int, float]  # batch size -> median batch latency
    tuned: frozenset[int]  # batch sizes built with a tuning database

    def per_frame_ms(self, batch: int) -> float:
        return self.latency_ms[batch] / batch

    def chosen(self, *, fps: float, deadline_ms: float) -> int:
        latency_ns = {b: round(ms * 1e6) for b, ms in self.latency_ms.items()}
        return frame_budget_batch(latency_ns, period_ns=round(1e9 / fps),
                                  deadline_ns=round(deadline_ms * 1e6))


def measure(store: ModelStore, *, models: Sequence[tuple[str, str]], batches: Sequence[int],
            repeats: int) -> list[BatchCurve]:
    curves = []
    for model, variant in tqdm(models, desc='latency vs batch'):
        latency = {}
        for batch in batches:
            engine = store.engine(model, variant, batch=batch)
            inputs = np.random.default_rng(0).uniform(
                0, 255, engine.input_shape).astype(np.float32)
            latency[batch] = median_latency_ns(engine, runs=repeats, inputs=inputs) / 1e6
        tuned = frozenset(b for b in batches if store.is_tuned(
            model, variant, batch=store.compiled_batch(b, 'cpu'), target=CompileTarget('cpu')))
        curves.append(BatchCurve(model, variant, latency, tuned))
    return curves


def format_curves(curves: Sequence[BatchCurve], *, fps: float, deadline_ms: float) -> str:
    batches = sorted(curves[0].latency_ms)
    lines = [f'median batch latency ms (per frame); Kum batch = largest batch that keeps up '
             f'with {fps:g} fps and a {deadline_ms:g} ms deadline',
             f'{"model":<16} {"variant":<8} '
             + ' '.join(f'{"B=" + str(b):>15}' for b in batches) + f' {"Kum batch":>9}']
    for c in curves:
        cells = ' '.join(f'{c.latency_ms[b]:>6.2f}{" " if b in c.tuned else "*"}'
                         f'({c.per_frame_ms(b):>5.2f})' for b in batches)
        lines.append(f'{c.model:<16} {c.variant:<8} {cells} '
                     f'{c.chosen(fps=fps, deadline_ms=deadline_ms):>9}')
    lines.append('* untuned: no tuning database for this model variant yet (edge-perception '
                 'tune); on the CPU a batch runs sample by sample through the batch-1 build')
    return '\n'.join(lines)


def plot(curves: Sequence[BatchCurve], path: Path) -> None:
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for index, c in enumerate(curves):
        batches = sorted(c.latency_ms)
        axis.plot(batches, [c.latency_ms[b] for b in batches], '-', color=f'C{index}',
                  label=f'{c.model}/{c.variant}: batch')
        axis.plot(batches, [c.per_frame_ms(b) for b in batches], '--', color=f'C{index}',
                  label=f'{c.model}/{c.variant}: per frame')
        for b in batches:  # o: built with a tuning database, x: untuned
            marker = 'o' if b in c.tuned else 'x'
            axis.plot([b, b], [c.latency_ms[b], c.per_frame_ms(b)], marker, color=f'C{index}',
                      linestyle='none')
    axis.set_xlabel('batch size')
    axis.set_ylabel('latency (ms)')
    axis.set_yscale('log')
    axis.set_xticks(sorted(curves[0].latency_ms))
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    axis.set_title('TVM latency vs batch size (o tuned, x untuned build)')
    save(figure, path)
