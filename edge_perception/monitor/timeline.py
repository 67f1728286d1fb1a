"""Response times of a finished run per task, their JSON-lines log, and the report figures.

A run (a demo, a replay recorded with ``ros2 bag record``) becomes one :class:`TaskTimeline`
per task: for each frame the task owed an output for, when it was sent and how long its
output took (None: no output came, a miss). ``edge-perception report`` plots them: response
time CDFs against the deadlines, and a miss timeline.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge_perception.figures import pyplot, save


class TimelineError(ValueError):
    """A run log or bag cannot be read into timelines."""


@dataclass(frozen=True)
class Sample:
    sent_s: float  # when the frame was sent (seconds on the run's clock)
    response_ms: float | None  # None: no output for a frame that was due


@dataclass
class TaskTimeline:
    task: str
    deadline_ms: float
    samples: list[Sample] = field(default_factory=list)

    def missed(self, sample: Sample) -> bool:
        return sample.response_ms is None or sample.response_ms > self.deadline_ms

    @property
    def miss_ratio(self) -> float:
        if not self.samples:
            return math.nan
        return sum(self.missed(s) for s in self.samples) / len(self.samples)


def write_log(timelines: Iterable[TaskTimeline], path: Path) -> None:
    """One JSON object per sample: task, deadline_ms, sent_s, response_ms (null: none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open('w', encoding='utf-8') as log:
        for timeline in timelines:
            for sample in timeline.samples:
                log.write(json.dumps({'task': timeline.task, 'deadline_ms': timeline.deadline_ms,
                                      'sent_s': sample.sent_s,
                                      'response_ms': sample.response_ms}) + '\n')


def read_log(path: Path) -> list[TaskTimeline]:
    """The timelines of a log written by :func:`write_log`; a bad line names its number."""
    timelines: dict[str, TaskTimeline] = {}
    try:
        lines = path.read_text(encoding='utf-8').splitlines()
    except OSError as err:
        raise TimelineError(f'Cannot read run log {path}: {err}') from None
    except UnicodeDecodeError:
        raise TimelineError(f'{path} is not a run log (JSON lines) nor a rosbag2 '
                            'folder: it is not text') from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            response = entry['response_ms']
            sample = Sample(float(entry['sent_s']),
                            None if response is None else float(response))
            timeline = timelines.setdefault(
                entry['task'], TaskTimeline(entry['task'], float(entry['deadline_ms'])))
        except (ValueError, KeyError, TypeError) as err:
            raise TimelineError(f'{path}:{number}: not a run-log entry ({err!r})') from None
        timeline.samples.append(sample)
    if not timelines:
        raise TimelineError(f'{path} holds no samples')
    return list(timelines.values())


def summary(timelines: Sequence[TaskTimeline]) -> str:
    lines = [f'{"task":<18} {"deadline":>9} {"frames":>7} {"misses":>7} {"miss ratio":>10} '
             f'{"p50 ms":>8} {"p99 ms":>8}']
    for t in timelines:
        times = sorted(s.response_ms for s in t.samples if s.response_ms is not None)
        p50 = times[len(times) // 2] if times else math.nan
        p99 = times[min(len(times) - 1, math.ceil(0.99 * len(times)) - 1)] if times else math.nan
        misses = sum(t.missed(s) for s in t.samples)
        lines.append(f'{t.task:<18} {t.deadline_ms:>7.0f}ms {len(t.samples):>7} {misses:>7} '
                     f'{t.miss_ratio:>10.3f} {p50:>8.1f} {p99:>8.1f}')
    return '\n'.join(lines)


def plot_report(timelines: Sequence[TaskTimeline], out_dir: Path) -> list[Path]:
    """response_cdf.png and miss_timeline.png in ``out_dir``; returns their paths."""
    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    cdf_path, timeline_path = out_dir / 'response_cdf.png', out_dir / 'miss_timeline.png'
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for index, t in enumerate(timelines):
        colour = f'C{index}'
        times = sorted(s.response_ms for s in t.samples if s.response_ms is not None)
        if times:
            # Frames without output sit at infinity: the curve ends below 1 by their share.
            shares = [(i + 1) / len(t.samples) for i in range(len(times))]
            axis.step(times, shares, where='post', color=colour,
                      label=f'{t.task} (miss ratio {t.miss_ratio:.1%})')
        axis.axvline(t.deadline_ms, color=colour, linestyle=':', alpha=0.8)
    axis.set_xlabel('response time: frame sent to output received (ms); dotted: deadlines')
    axis.set_ylabel('share of due frames')
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    axis.set_title('Response-time CDF per task')
    save(figure, cdf_path)

    figure, axes = plt.subplots(len(timelines), 1, figsize=(8, 1.8 * len(timelines) + 0.6),
                                sharex=True, squeeze=False)
    start = min((s.sent_s for t in timelines for s in t.samples), default=0.0)
    for axis, t in zip(axes[:, 0], timelines, strict=True):
        met = [(s.sent_s - start, s.response_ms) for s in t.samples if not t.missed(s)]
        late = [(s.sent_s - start, s.response_ms) for s in t.samples
                if s.response_ms is not None and t.missed(s)]
        lost = [s.sent_s - start for s in t.samples if s.response_ms is None]
        if met:
            axis.plot(*zip(*met, strict=True), '.', color='C2', markersize=3, label='met')
        if late:
            axis.plot(*zip(*late, strict=True), 'x', color='C1', label='late')
        for when in lost:
            axis.axvline(when, color='C3', alpha=0.4, linewidth=1)
        axis.axhline(t.deadline_ms, color='black', linestyle=':', linewidth=1)
        axis.set_ylabel('ms')
        axis.set_title(f'{t.task}: {len(late)} late, {len(lost)} without output (red lines)',
                       fontsize=9)
    axes[-1, 0].set_xlabel('time since the first frame (s)')
    save(figure, timeline_path)
    return [cdf_path, timeline_path]
