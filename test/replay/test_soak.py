"""A short soak at 2x lane load: no crash, a sample every second, queues within the bound."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from edge_perception.bench.soak import SoakResult, SoakSample, format_result, run_soak
from edge_perception.core.config import load_config
from edge_perception.tools.lane_processes import ChildProcesses


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
    assert result.urgent_response_ms is not None  # the urgent task completed jobs
    # Its bound exists unless the analysis finds none within the deadline (a loaded VM).
    if result.urgent_bound_ms is None:
        assert 'no response-time bound' in report
    else:
        assert f'deadline {result.urgent_deadline_ms:.1f} ms' in report


def test_urgent_misses_are_counted_per_ten_minutes() -> None:
    def at(elapsed_s: float, misses: int) -> SoakSample:
        return SoakSample(elapsed_s=elapsed_s, rss_mb=300.0, queued=0, jobs=1, urgent_jobs=1,
                          urgent_misses=misses)

    samples = [at(1, 0), at(599, 2), at(600, 2), at(1150, 2), at(1250, 5), at(1800.3, 6)]
    result = SoakResult({'cpu': 2.0}, 'traffic_light', samples, 10, None)
    assert result.urgent_misses_per_window() == [2, 0, 4]
    # The last sample of a 600 s soak, taken a little after 600 s, opens no second window.
    late = SoakResult({'cpu': 2.0}, 'traffic_light', [at(300, 1), at(600.02, 3)], 10, None)
    assert late.urgent_misses_per_window() == [3]
    assert 'its misses per 10 minutes: 2, 0, 4' in format_result(result)
    assert SoakResult({}, '', [], 0, None).urgent_misses_per_window() == []


def test_a_child_that_exits_is_reported_with_its_output(tmp_path: Path) -> None:
    with ChildProcesses(log_dir=tmp_path) as children:
        children.start('player', [sys.executable, '-c', 'print("no bag"); raise SystemExit(3)'])
        children.processes['player'].wait()
        log = tmp_path / 'player.log'
        with pytest.raises(RuntimeError,
                           match=rf'player exited with status 3 \(its output: {log}\)'):
            children.check()
    assert log.read_text().strip() == 'no bag'


def test_children_are_stopped_together(tmp_path: Path) -> None:
    children = ChildProcesses(log_dir=tmp_path)
    for name in ('a', 'b'):
        children.start(name, [sys.executable, '-c', 'import time; time.sleep(60)'])
    children.check()  # both running
    children.stop(timeout_s=10)
    assert all(p.returncode is not None for p in children.processes.values())


def test_a_soak_without_samples_fails_as_a_crashed_one_does() -> None:
    """It printed FAILED and exited 0; the command now exits 1 on any failure."""
    empty = SoakResult(load={}, urgent_task='traffic_light', samples=[], max_queue_bound=1,
                       crashed=None)
    assert empty.failure == 'no samples'
    assert format_result(empty) == 'soak FAILED: no samples'
    crashed = dataclasses.replace(empty, crashed='container exited with 1')
    assert crashed.failure == 'container exited with 1'
