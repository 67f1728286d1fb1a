"""Run timelines: the JSON-lines log round trip, bad lines named, report figures drawn."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edge_perception.monitor.timeline import (
    Sample,
    TaskTimeline,
    TimelineError,
    plot_report,
    read_log,
    summary,
    write_log,
)


def sample_run() -> list[TaskTimeline]:
    lights = TaskTimeline('traffic_light', 100.0, [Sample(i * 0.1, 20.0 + i) for i in range(20)])
    signs = TaskTimeline('traffic_sign', 200.0,
                         [Sample(i * 0.2, 150.0 + 10 * i) for i in range(8)])
    signs.samples.append(Sample(1.7, None))  # due, never came
    return [lights, signs]


def test_log_round_trips(tmp_path: Path) -> None:
    path = tmp_path / 'run.jsonl'
    write_log(sample_run(), path)
    back = read_log(path)
    assert [(t.task, t.deadline_ms, len(t.samples)) for t in back] == [
        ('traffic_light', 100.0, 20), ('traffic_sign', 200.0, 9)]
    assert back[1].samples[-1] == Sample(1.7, None)


def test_miss_ratio_counts_late_and_missing_outputs() -> None:
    lights, signs = sample_run()
    assert lights.miss_ratio == 0.0
    # responses 150..220 ms against 200 ms: 210 and 220 are late, plus one missing output
    assert signs.miss_ratio == pytest.approx(3 / 9)
    assert math.isnan(TaskTimeline('idle', 10.0).miss_ratio)
    assert '0.333' in summary([lights, signs])


def test_bad_log_lines_are_named(tmp_path: Path) -> None:
    path = tmp_path / 'run.jsonl'
    path.write_text('{"task": "a", "deadline_ms": 10, "sent_s": 0, "response_ms": 1}\n'
                    '{"task": "a", "sent_s": 1}\n')
    with pytest.raises(TimelineError, match=r'run.jsonl:2: not a run-log entry'):
        read_log(path)
    path.write_text('\n')
    with pytest.raises(TimelineError, match='holds no samples'):
        read_log(path)
    with pytest.raises(TimelineError, match='Cannot read run log'):
        read_log(tmp_path / 'missing.jsonl')


def test_report_figures_are_written(tmp_path: Path) -> None:
    paths = plot_report(sample_run(), tmp_path)
    assert [p.name for p in paths] == ['response_cdf.png', 'miss_timeline.png']
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_a_binary_file_is_named_not_decoded(tmp_path: Path) -> None:
    binary = tmp_path / 'capture.bin'
    binary.write_bytes(b'x\x00\xff\xfe')
    with pytest.raises(TimelineError, match=r'capture\.bin is not a run log .*: it is not text'):
        read_log(binary)
