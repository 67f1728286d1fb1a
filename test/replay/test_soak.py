"""A short soak at 2x lane load: no crash, a sample every second, queues within the bound."""

from __future__ import annotations

from pathlib import Path

from edge_perception.bench.soak import format_result, run_soak
from edge_perception.core.config import load_config


def test_short_soak_keeps_queues_bounded(repo_root: Path, tmp_path: Path) -> None:
    result = run_soak(load_config(repo_root / 'config' / 'f1tenth.yaml'), tmp_path,
                      seconds=8.0)
    assert result.crashed is None
    assert len(result.samples) >= 7
    assert result.samples[-1].jobs > result.samples[0].jobs  # the load kept coming
    assert max(s.queued for s in result.samples) <= result.max_queue_bound
    assert min(result.load.values()) >= 1.5
    report = format_result(result)
    assert 'soak: ' in report
    assert result.urgent_bound_ms is not None  # the urgent task completed jobs
    assert f'deadline {result.urgent_deadline_ms:.1f} ms' in report
