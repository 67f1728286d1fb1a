"""Health of each task and lane: the one schema of what /diagnostics carries.

The container publishes one status per task and per lane (diagnostic_msgs conventions: a
name ``edge_perception: <task>`` or ``edge_perception: lane <name>``, a level, a one-line
message, string key/values); the monitor, the benchmarks and rqt read them back. Both sides
go through :class:`TaskHealth` and :class:`LaneHealth`, so the keys are spelled only here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

OK, WARN, ERROR, STALE = 0, 1, 2, 3  # diagnostic_msgs/DiagnosticStatus levels
LEVEL_NAMES = {OK: 'OK', WARN: 'WARN', ERROR: 'ERROR', STALE: 'STALE'}
PREFIX = 'edge_perception'
LANE_ITEM = 'lane '
SPINNING_KEY = 'spinning_thread: '  # a lane's key per source of spinning-thread work
# A task's recent miss ratio at which it is reported WARN, then ERROR.
WARN_MISS_RATIO = 0.05
ERROR_MISS_RATIO = 0.20


def _fmt(value: float) -> str:
    return 'n/a' if math.isnan(value) or math.isinf(value) else f'{value:.3f}'


def _number(values: Mapping[str, str], key: str) -> float:
    try:
        return float(values.get(key, 'nan'))
    except ValueError:  # 'n/a', or a foreign publisher's text
        return math.nan


def _count(values: Mapping[str, str], key: str) -> int:
    try:
        return int(values.get(key, '0'))
    except ValueError:
        return 0


@dataclass(frozen=True)
class InputHealth:
    """Whether a task's camera sends: the watchdog's level ('ok', 'warn', 'error') and the
    age of its last frame (None: none yet)."""

    level: str
    last_frame_age_s: float | None


@dataclass(frozen=True)
class NodeCounts:
    """What a task's node counted: frames in and out, bad frames per reason, and subscribers
    of its output found expecting another message type (they receive nothing)."""

    frames_received: int = 0
    frames_published: int = 0
    bad_frames: Mapping[str, int] = field(default_factory=dict)
    mismatched_subscribers: int = 0


@dataclass(frozen=True)
class TaskHealth:
    task: str
    level: int
    message: str
    lane: str
    variant: str
    period_ms: float
    deadline_ms: float
    priority: int = 0
    jobs: int = 0
    completed: int = 0
    skipped_frames: int = 0  # not released: inside the task's period
    misses: int = 0
    late: int = 0
    drops: Mapping[str, int] = field(default_factory=dict)  # reason -> jobs dropped
    overruns: int = 0
    isolations: int = 0
    refused_frames: int = 0  # not released: the task was isolated
    miss_ratio: float = math.nan
    recent_miss_ratio: float = math.nan
    response_p50_ms: float = math.nan
    response_p99_ms: float = math.nan
    response_max_ms: float = math.nan
    wcet_estimate_ms: float = math.nan
    wcet_margin: float = math.nan
    transport_max_ms: float = math.nan  # camera stamp to receipt, where on this clock
    rta_response_ms: float = math.nan
    # The bound's terms (see scheduling.ResponseBound): why a task is not schedulable.
    rta_wcet_ms: float = math.nan
    rta_blocking_ms: float = math.nan
    rta_interference_ms: float = math.nan
    rta_jitter_ms: float = math.nan
    schedulable: bool | None = None  # None: not analysed yet
    input: InputHealth | None = None
    node: NodeCounts | None = None
    engine: str = ''  # what runs its models: tvm, onnxruntime or both ('' = not told)

    @property
    def name(self) -> str:
        return f'{PREFIX}: {self.task}'

    @property
    def dropped(self) -> int:
        return sum(self.drops.values())

    @property
    def bad_frames(self) -> int:
        return 0 if self.node is None else sum(self.node.bad_frames.values())

    def key_values(self) -> dict[str, str]:
        values = {
            'period_ms': f'{self.period_ms:g}', 'deadline_ms': f'{self.deadline_ms:g}',
            'lane': self.lane, 'priority': str(self.priority), 'variant': self.variant,
            'jobs': str(self.jobs), 'completed': str(self.completed),
            'skipped_frames': str(self.skipped_frames), 'misses': str(self.misses),
            'late': str(self.late), 'drops': str(self.dropped),
            **{f'drops_{reason}': str(count) for reason, count in sorted(self.drops.items())},
            'overruns': str(self.overruns), 'isolations': str(self.isolations),
            'refused_frames': str(self.refused_frames),
            'miss_ratio': _fmt(self.miss_ratio), 'recent_miss_ratio': _fmt(self.recent_miss_ratio),
            'response_p50_ms': _fmt(self.response_p50_ms),
            'response_p99_ms': _fmt(self.response_p99_ms),
            'response_max_ms': _fmt(self.response_max_ms),
            'wcet_estimate_ms': _fmt(self.wcet_estimate_ms),
            'wcet_margin': f'{self.wcet_margin:g}',
            'transport_max_ms': _fmt(self.transport_max_ms),
            'rta_response_ms': _fmt(self.rta_response_ms),
            'rta_wcet_ms': _fmt(self.rta_wcet_ms),
            'rta_blocking_ms': _fmt(self.rta_blocking_ms),
            'rta_interference_ms': _fmt(self.rta_interference_ms),
            'rta_jitter_ms': _fmt(self.rta_jitter_ms),
            'schedulable': ('unknown' if self.schedulable is None
                            else str(self.schedulable).lower()),
        }
        if self.engine:
            values['engine'] = self.engine
        if self.input is not None:
            age = self.input.last_frame_age_s
            values |= {'input': self.input.level,
                       'last_frame_age_s': 'never' if age is None else f'{age:.1f}'}
        if self.node is not None:
            values |= {'frames_received': str(self.node.frames_received),
                       'frames_published': str(self.node.frames_published),
                       'bad_frames': str(self.bad_frames),
                       **{f'bad_frames_{reason}': str(count)
                          for reason, count in sorted(self.node.bad_frames.items())},
                       'mismatched_subscribers': str(self.node.mismatched_subscribers)}
        return values

    @classmethod
    def from_key_values(cls, task: str, *, level: int, message: str, hardware_id: str,
                        values: Mapping[str, str]) -> TaskHealth:
        """The health a status carried; a missing or unreadable value reads as unknown
        (NaN, 0) rather than failing: other publishers share /diagnostics."""
        v = values
        schedulable = v.get('schedulable', 'unknown')
        age = v.get('last_frame_age_s', 'never')
        return cls(
            task=task, level=level, message=message, lane=v.get('lane', hardware_id),
            variant=v.get('variant', '?'), period_ms=_number(v, 'period_ms'),
            deadline_ms=_number(v, 'deadline_ms'), priority=_count(v, 'priority'),
            jobs=_count(v, 'jobs'), completed=_count(v, 'completed'),
            skipped_frames=_count(v, 'skipped_frames'), misses=_count(v, 'misses'),
            late=_count(v, 'late'), drops=_by_reason(v, 'drops_'),
            overruns=_count(v, 'overruns'), isolations=_count(v, 'isolations'),
            refused_frames=_count(v, 'refused_frames'), miss_ratio=_number(v, 'miss_ratio'),
            recent_miss_ratio=_number(v, 'recent_miss_ratio'),
            response_p50_ms=_number(v, 'response_p50_ms'),
            response_p99_ms=_number(v, 'response_p99_ms'),
            response_max_ms=_number(v, 'response_max_ms'),
            wcet_estimate_ms=_number(v, 'wcet_estimate_ms'),
            wcet_margin=_number(v, 'wcet_margin'),
            transport_max_ms=_number(v, 'transport_max_ms'),
            rta_response_ms=_number(v, 'rta_response_ms'),
            rta_wcet_ms=_number(v, 'rta_wcet_ms'),
            rta_blocking_ms=_number(v, 'rta_blocking_ms'),
            rta_interference_ms=_number(v, 'rta_interference_ms'),
            rta_jitter_ms=_number(v, 'rta_jitter_ms'),
            schedulable=None if schedulable not in ('true', 'false') else schedulable == 'true',
            input=None if 'input' not in v else InputHealth(
                v['input'], None if age == 'never' else _number(v, 'last_frame_age_s')),
            node=None if not {'frames_received', 'bad_frames'} & v.keys() else NodeCounts(
                _count(v, 'frames_received'), _count(v, 'frames_published'),
                _by_reason(v, 'bad_frames_'), _count(v, 'mismatched_subscribers')),
            engine=v.get('engine', ''))


def _by_reason(values: Mapping[str, str], prefix: str) -> dict[str, int]:
    return {key[len(prefix):]: _count(values, key) for key in values if key.startswith(prefix)}


def task_level(*, failure: str | None = None, isolated: str | None = None,
               input_level: int = OK, input_message: str = '',
               recent_miss_ratio: float = 0.0, schedulable: bool | None = None,
               untuned: str | None = None) -> tuple[int, str]:
    """A task's level and message, worst first: it could not start (``failure``), it is
    isolated (``isolated``: why), its camera is silent, it misses deadlines, its camera is
    late, the analysis says it cannot meet them, a model runs on onnxruntime for want of
    tuning records (``untuned``: the command that tunes it). A task without frames misses
    nothing, so a silent camera outranks a clean miss ratio."""
    ratio = f'missing deadlines ({recent_miss_ratio:.0%} recent)'
    for level, message, holds in (
            (ERROR, f'disabled: {failure}', failure is not None),
            (ERROR, str(isolated), isolated is not None),
            (ERROR, input_message, input_level == ERROR),
            (ERROR, ratio, recent_miss_ratio >= ERROR_MISS_RATIO),
            (WARN, ratio, recent_miss_ratio >= WARN_MISS_RATIO),
            (WARN, input_message, input_level == WARN),
            (WARN, 'not schedulable by analysis', schedulable is False),
            (WARN, f'untuned: runs on onnxruntime until `{untuned}`', untuned is not None)):
        if holds:
            return level, message
    return OK, 'meeting deadlines'


@dataclass(frozen=True)
class LaneHealth:
    """A lane's share of wall time spent running stages since the previous report, the
    jobs waiting per task, and the spinning thread's measured work that delays the lane
    (source -> its cost and rate). A lane whose CUDA device is missing runs on the CPU:
    WARN."""

    lane: str
    device: str
    fallback: bool
    utilisation: float
    queued: Mapping[str, int] = field(default_factory=dict)
    spinning: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f'{PREFIX}: {LANE_ITEM}{self.lane}'

    @property
    def level(self) -> int:
        return WARN if self.fallback else OK

    @property
    def message(self) -> str:
        return self.device + (' (CPU fallback: no CUDA device)' if self.fallback else '')

    def key_values(self) -> dict[str, str]:
        return {'utilisation': _fmt(self.utilisation), 'device': self.device,
                'fallback': str(self.fallback).lower(),
                **{f'queued_{task}': str(n) for task, n in sorted(self.queued.items())},
                **{f'{SPINNING_KEY}{source}': load for source, load in self.spinning.items()}}

    @classmethod
    def from_key_values(cls, lane: str, values: Mapping[str, str]) -> LaneHealth:
        return cls(lane=lane, device=values.get('device', '?'),
                   fallback=values.get('fallback') == 'true',
                   utilisation=_number(values, 'utilisation'),
                   queued=_by_reason(values, 'queued_'),
                   spinning={key[len(SPINNING_KEY):]: value for key, value in values.items()
                             if key.startswith(SPINNING_KEY)})


def health_of(name: str, *, level: int, message: str, hardware_id: str,
              values: Mapping[str, str]) -> TaskHealth | LaneHealth | None:
    """The task or lane health a status named ``name`` carries; None if it is not ours."""
    ours = f'{PREFIX}: '
    if not name.startswith(ours):
        return None
    item = name[len(ours):]
    if item.startswith(LANE_ITEM):
        return LaneHealth.from_key_values(item[len(LANE_ITEM):], values)
    return TaskHealth.from_key_values(item, level=level, message=message,
                                      hardware_id=hardware_id, values=values)
