"""The executor benchmark's figure and report are drawn from its rows (no executors run here)."""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

from edge_perception.bench.executor_comparison import (
    EXECUTORS,
    TaskRow,
    Workload,
    format_report,
    plot,
)
from edge_perception.bench.model_latency import (
    LatencyRow,
    _alternating,
    _enough_repeats,
    format_rows,
)
from edge_perception.core.config import load_config


def test_plot_writes_a_png(repo_root: Path, tmp_path: Path) -> None:
    rows = [TaskRow(executor=name, task=task, lane='cpu', deadline_ms=80.0, frames=10,
                    misses=index, p50_ms=20.0, p99_ms=60.0,
                    schedulable=True if index == 0 else None,
                    rta_ms=45.0 if index == 0 else None,
                    executor_misses=(0, 7, 1) if index == 0 else None,
                    variant='half' if index == 1 else 'full', recall=0.9 - index / 10,
                    engine='tvm' if index == 0 else '-',
                    response_ms=tuple(10.0 + 5 * i + 30 * index for i in range(10)))
            for index, name in enumerate(EXECUTORS) for task in ('traffic_light', 'sign_0')]
    workload = Workload(load_config(repo_root / 'config' / 'f1tenth.yaml'), 12.5,
                        {'cpu': 1.3, 'gpu': 1.5}, tmp_path / 'bag', 'traffic_light')
    out = tmp_path / 'figure.png'
    plot(workload, rows, out)
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert out.stat().st_size > 10_000
    report = format_report(workload, rows).splitlines()
    ours = [line for line in report if line.startswith('deadline (ours)')]
    # RTA verdict and bound; late/dropped/skipped inside
    assert ours[0].split()[-6:] == ['ok', '45.0', '0/7/1', 'full', '0.900', 'tvm']
    adaptive = [line for line in report if line.startswith('deadline+variants (ours)')]
    assert adaptive[0].split()[-3:] == ['half', '0.800', '-']
    assert 'overall miss ratio deadline+variants (ours) 0.100, mean recall 0.800' in [
        ' '.join(line.split()) for line in report]
    assert ('tasks the analysis admits (deadline (ours)): traffic_light, sign_0; their misses: '
            '14 inside the executor (late + dropped), 0 end to end, of 20 frames (target 0)'
            ) in report
    # The per-lane stock rows are baselines too: the best of them here.
    assert ('ours vs the best stock baseline (stock Single per lane, depth 1): 100.0% fewer'
            in report[-2])


def test_model_latency_rows_name_the_database_and_the_ratio() -> None:
    rows = [LatencyRow('detector', 'full', 1, 1, 'znver5', 10.0, 11.0, 200.0, 210.0, 5.0, 6.0),
            LatencyRow('sign_classifier', 'quarter', 1, 1, '', 0.2, 0.3, 0.2, 0.3, 0.1, 0.1),
            LatencyRow('detector', 'half', 4, 1, 'sm90', 1.0, 1.2, 4.0, 4.1, 8.0, 9.0,
                       device='cuda', ort_provider='cpu')]
    lines = format_rows(rows).splitlines()
    assert lines[2].split()[4:6] == ['cpu', 'znver5']
    assert lines[2].split()[-2:] == ['2.00x', '40.0x']
    assert lines[3].split()[5] == 'no'
    # A GPU row names where TVM ran, the database's GPU and onnxruntime's provider.
    cuda = lines[4].split()
    assert cuda[4:6] == ['cuda', 'sm90']
    assert cuda[12] == 'cpu'
    assert cuda[-2:] == ['0.12x', '0.5x']


def test_compared_runtimes_take_every_place_in_turn() -> None:
    """Neither runtime always runs right after the other: after one warm-up call each, the
    order alternates which goes first."""
    order: list[str] = []
    seconds = _alternating((partial(order.append, 'tvm'), partial(order.append, 'ort')), 4)
    assert [len(runner) for runner in seconds] == [4, 4]
    assert order == ['tvm', 'ort'] + ['tvm', 'ort', 'ort', 'tvm'] * 2


def test_fast_models_get_more_turns_up_to_a_cap() -> None:
    """A no-op fills half a second only at the cap (100x the asked repeats); a 10 ms call
    gets the asked repeats, never fewer."""
    assert _enough_repeats((lambda: None,), 5) == 500
    assert _enough_repeats((partial(time.sleep, 0.01),), 5, seconds=0.05) == 5
