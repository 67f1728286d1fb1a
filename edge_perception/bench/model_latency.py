"""Latency of every model variant: TVM tuned and untuned vs onnxruntime, side by side.

The tuned TVM module and onnxruntime take turns on the same input, so both see the same
machine state (the much slower untuned build is timed after them); the ratio of medians TVM
tuned / onnxruntime is the figure of merit (lower is better, <= 1.0 is the goal). "Tuned" is
the build a node gets: with the committed MetaSchedule database of this CPU, or one tuned on
another CPU of the same kind (column ``db`` names the CPU whose records come first; "no":
untuned). A batch on the CPU runs sample by sample through the batch-1 build, as a lane
runs it (see ``ModelStore.compiled_batch``); onnxruntime gets the whole batch in one call.

On a CUDA host the same comparison runs for the gpu lane's builds (``device='cuda'``):
onnxruntime then uses its CUDA provider when the installed build has one, else the CPU with
every core, and the row names the provider it got.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime
from tqdm import tqdm

from edge_perception.core.aligned_arrays import aligned_empty
from edge_perception.figures import pyplot, save
from edge_perception.runtime.tvm.store import ModelStore
from edge_perception.runtime.tvm.target import CompileTarget, tagged_cpu


@dataclass(frozen=True)
class LatencyRow:
    model: str
    variant: str
    batch: int
    threads: int
    database: str  # the CPU (LLVM name) whose tuning records the build applies first; '' none
    tvm_p50_ms: float
    tvm_p99_ms: float
    untuned_p50_ms: float
    untuned_p99_ms: float
    ort_p50_ms: float
    ort_p99_ms: float
    device: str = 'cpu'  # where the TVM builds run
    ort_provider: str = 'cpu'  # onnxruntime's execution provider: 'cpu' or 'cuda'

    @property
    def ratio(self) -> float:
        return self.tvm_p50_ms / self.ort_p50_ms


def _session(path: str, threads: int, device: str) -> tuple[onnxruntime.InferenceSession, str]:
    """onnxruntime on ``device`` where its build supports it; returns the provider used."""
    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    # Its idle workers otherwise spin on the cores TVM's threads need next: detector full on
    # two threads, taking turns, TVM 17.3 ms with spinning against 1.88 ms without (1.87 ms
    # alone), onnxruntime 1.42 against 1.43 ms. Small models on two threads do pay for it
    # (classifier full 0.075 -> 0.108 ms); one thread has no workers to spin.
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    if device == 'cuda' and 'CUDAExecutionProvider' in onnxruntime.get_available_providers():
        return onnxruntime.InferenceSession(path, options,
                                            providers=['CUDAExecutionProvider']), 'cuda'
    # Against a GPU build, the CPU reference gets every core: its best, not a handicap.
    options.intra_op_num_threads = (len(os.sched_getaffinity(0)) if device == 'cuda'
                                    else threads)
    return onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider']), 'cpu'


def measure(store: ModelStore, untuned: ModelStore, *, batches: Sequence[int],
            threads: Sequence[int], repeats: int, device: str = 'cpu') -> list[LatencyRow]:
    """Rows for every model variant, batch and thread count (a CUDA build has no thread
    count: ``threads`` is ignored for ``device='cuda'``)."""
    if device == 'cuda':
        threads = (1,)
    cases = [(model, variant, batch, n_threads)
             for model, entry in sorted(store.manifest.models.items())
             for variant in sorted(entry.variants) for batch in batches for n_threads in threads]
    rows = []
    for model, variant, batch, n_threads in tqdm(cases, desc=f'model latency ({device})'):
        lane = {'device': device, 'threads': n_threads, 'lane': f'bench-{device}'}
        engine = store.engine(model, variant, batch=batch, **lane)
        plain = untuned.engine(model, variant, batch=batch, **lane)
        session, provider = _session(str(store.manifest.path(model, variant)), n_threads,
                                     device)
        # Aligned as a node's frame input is (TVM reads it in place); both runtimes get it.
        inputs = aligned_empty(engine.input_shape)
        inputs[...] = np.random.default_rng(0).uniform(0, 255, engine.input_shape)
        compared = (partial(engine.run, inputs), partial(session.run, None, {'input': inputs}))
        tuned, ort = _alternating(compared, _enough_repeats(compared, repeats))
        # The untuned build gets its own loop: taking turns with the two compared, its 200 ms
        # calls left whichever ran next a cold cache (detector full, TVM tuned vs onnxruntime:
        # 4.61 vs 3.71 ms that way, 4.03 vs 2.95 ms taking turns only with each other).
        [plain_seconds] = _alternating((partial(plain.run, inputs),), max(3, repeats // 4))
        target = CompileTarget(device, n_threads)
        applied = store.applied_databases(
            model, variant, batch=store.compiled_batch(batch, device), target=target)
        rows.append(LatencyRow(
            model, variant, batch, n_threads,
            tagged_cpu(applied[0].parent.name) if applied else '',
            *_p50_p99(tuned), *_p50_p99(plain_seconds), *_p50_p99(ort),
            device=device, ort_provider=provider))
    return rows


def _enough_repeats(runners: Sequence[Callable[[], object]], repeats: int,
                    seconds: float = 0.5) -> int:
    """At least ``repeats``, more where the runners are fast: 50 turns of a 0.03 ms classifier
    take 3 ms, too few for a ratio decided in the second decimal; this many fill ``seconds``."""
    for run in runners:
        run()  # the first call may set things up
    start = time.perf_counter()
    for run in runners:
        run()
    turn = max(time.perf_counter() - start, 1e-6)
    return max(repeats, min(100 * repeats, int(seconds / turn)))


def _alternating(runners: Sequence[Callable[[], object]], repeats: int) -> list[list[float]]:
    """Seconds per call of each runner, the runners taking turns so that all see the same
    machine state."""
    seconds: list[list[float]] = [[] for _ in runners]
    for run in runners:
        run()  # warm-up
    for repeat in range(repeats):
        # Each takes every place in turn: on the GPU host the first of two identical builds
        # ran up to 25 % slower than the second (0.37 vs 0.30 ms).
        for index in map(int, np.roll(np.arange(len(runners)), repeat)):
            start = time.perf_counter()
            runners[index]()
            seconds[index].append(time.perf_counter() - start)
    return seconds


def _p50_p99(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def format_rows(rows: Sequence[LatencyRow]) -> str:
    # Three decimals and a two-decimal ratio: a classifier call is 0.03 ms and the target
    # (<= 1.0x) is decided in the second decimal.
    lines = ['latency in ms (p50 / p99); TVM/ORT = ratio of medians, tuned TVM vs onnxruntime; '
             "dev: where TVM ran, ort: onnxruntime's provider; TVM on the CPU runs a batch "
             'sample by sample through its batch-1 build',
             f'{"model":<16} {"variant":<8} {"batch":>5} {"thr":>3} {"dev":>4} {"db":>7} '
             f'{"TVM tuned":>17} {"TVM untuned":>18} {"ort":>4} {"onnxruntime":>15} '
             f'{"TVM/ORT":>8} {"untuned/ORT":>11}']
    for r in rows:
        lines.append(f'{r.model:<16} {r.variant:<8} {r.batch:>5} {r.threads:>3} '
                     f'{r.device:>4} {r.database or "no":>7} '
                     f'{r.tvm_p50_ms:>7.3f} / {r.tvm_p99_ms:<7.3f} '
                     f'{r.untuned_p50_ms:>8.3f} / {r.untuned_p99_ms:<7.3f} {r.ort_provider:>4} '
                     f'{r.ort_p50_ms:>6.3f} / {r.ort_p99_ms:<6.3f} {r.ratio:>6.2f}x '
                     f'{r.untuned_p50_ms / r.ort_p50_ms:>10.1f}x')
    return '\n'.join(lines)


def plot(rows: Sequence[LatencyRow], path: Path) -> None:
    """Median latency per model variant (batch 1, 1 thread): TVM tuned, untuned, onnxruntime."""
    plt = pyplot()
    chosen = [r for r in rows if r.batch == 1 and r.threads == 1] or list(rows)
    names = [f'{r.model}\n{r.variant} b{r.batch} {r.device}' for r in chosen]
    x = np.arange(len(chosen))
    figure, axis = plt.subplots(figsize=(max(6.0, len(chosen) * 1.2), 4))
    for offset, (label, values) in enumerate((
            ('TVM tuned', [r.tvm_p50_ms for r in chosen]),
            ('TVM untuned', [r.untuned_p50_ms for r in chosen]),
            ('onnxruntime', [r.ort_p50_ms for r in chosen]))):
        axis.bar(x + (offset - 1) * 0.27, values, 0.27, label=label)
    for index, r in enumerate(chosen):
        axis.annotate(f'{r.ratio:.2f}x', (index - 0.27, r.tvm_p50_ms), ha='center',
                      va='bottom', fontsize=7)
    axis.set_xticks(x, names, fontsize=7)
    axis.set_yscale('log')
    axis.set_ylabel('median latency (ms)')
    axis.set_title('TVM vs onnxruntime (label: tuned TVM / onnxruntime)')
    axis.legend(fontsize=8)
    save(figure, path)
