"""What the deadline monitors show, read out of /diagnostics (ROS-free, thread-safe).

The container publishes one DiagnosticStatus per task (``edge_perception: <task>``) and per
lane (``edge_perception: lane <name>``) each second, and one event per missed deadline. A
:class:`Board` keeps the latest row of each, a sliding window of response-time history per
task (for the charts) and miss-event counts. A ROS callback thread feeds it; the terminal
view and the rqt widget read :meth:`Board.snapshot` from their own thread.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

PREFIX = 'edge_perception: '
LANE_PREFIX = 'lane '
LEVEL_NAMES = {0: 'OK', 1: 'WARN', 2: 'ERROR', 3: 'STALE'}
STALE = 3
# No /diagnostics for this long (they come at 1 Hz): every row is shown stale.
STALE_AFTER_S = 3.0


@dataclass(frozen=True)
class Status:
    """A diagnostic_msgs/DiagnosticStatus, copied out of the message."""

    name: str
    level: int
    message: str
    hardware_id: str
    values: Mapping[str, str]


def _number(values: Mapping[str, str], key: str) -> float:
    try:
        return float(values.get(key, 'nan'))
    except ValueError:
        return math.nan


def _count(values: Mapping[str, str], key: str) -> int:
    try:
        return int(values.get(key, '0'))
    except ValueError:
        return 0


@dataclass(frozen=True)
class TaskRow:
    task: str
    level: int
    message: str
    lane: str
    variant: str
    period_ms: float
    deadline_ms: float
    p50_ms: float
    p99_ms: float
    miss_ratio: float
    recent_miss_ratio: float
    jobs: int
    misses: int
    drops: int
    bad_frames: int
    schedulable: str
    late: int = 0
    skipped: int = 0  # frames not released: inside the task's period, or refused (isolated)
    rta_ms: float = math.nan  # response-time bound by analysis

    @classmethod
    def of(cls, task: str, status: Status) -> TaskRow:
        v = status.values
        return cls(task=task, level=status.level, message=status.message,
                   lane=v.get('lane', status.hardware_id), variant=v.get('variant', '?'),
                   period_ms=_number(v, 'period_ms'), deadline_ms=_number(v, 'deadline_ms'),
                   p50_ms=_number(v, 'response_p50_ms'), p99_ms=_number(v, 'response_p99_ms'),
                   miss_ratio=_number(v, 'miss_ratio'),
                   recent_miss_ratio=_number(v, 'recent_miss_ratio'), jobs=_count(v, 'jobs'),
                   misses=_count(v, 'misses'), drops=_count(v, 'drops'),
                   bad_frames=_count(v, 'bad_frames'),
                   schedulable=v.get('schedulable', 'unknown'), late=_count(v, 'late'),
                   skipped=_count(v, 'skipped_frames') + _count(v, 'refused_frames'),
                   rta_ms=_number(v, 'rta_response_ms'))


@dataclass(frozen=True)
class LaneRow:
    lane: str
    level: int
    device: str
    fallback: bool
    utilisation: float
    queued: int

    @classmethod
    def of(cls, lane: str, status: Status) -> LaneRow:
        v = status.values
        queued = sum(_count(v, key) for key in v if key.startswith('queued_'))
        return cls(lane=lane, level=status.level, device=v.get('device', '?'),
                   fallback=v.get('fallback') == 'true',
                   utilisation=_number(v, 'utilisation'), queued=queued)


@dataclass(frozen=True)
class HistoryPoint:
    stamp_s: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class Snapshot:
    tasks: tuple[TaskRow, ...]
    lanes: tuple[LaneRow, ...]
    history: Mapping[str, tuple[HistoryPoint, ...]]
    miss_events: Mapping[str, int]
    updated_s: float | None

    def shown_level(self, level: int, now_s: float) -> int:
        """``level``, or STALE once /diagnostics has been silent for STALE_AFTER_S: the
        container (or its lane process) may be gone, and its last word is not news."""
        stale = self.updated_s is not None and now_s - self.updated_s > STALE_AFTER_S
        return STALE if stale else level


@dataclass
class Board:
    """Latest rows + ``history_s`` seconds of response-time history per task."""

    history_s: float = 60.0
    _tasks: dict[str, TaskRow] = field(default_factory=dict)
    _lanes: dict[str, LaneRow] = field(default_factory=dict)
    _history: dict[str, deque[HistoryPoint]] = field(default_factory=dict)
    _misses: Counter[str] = field(default_factory=Counter)
    _updated_s: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def update(self, statuses: Iterable[Status], *, stamp_s: float) -> int:
        """Take one /diagnostics array; returns how many statuses were ours."""
        ours = 0
        with self._lock:
            for status in statuses:
                if not status.name.startswith(PREFIX):
                    continue  # other components share /diagnostics
                ours += 1
                item = status.name[len(PREFIX):]
                if item.startswith(LANE_PREFIX):
                    lane = item[len(LANE_PREFIX):]
                    self._lanes[lane] = LaneRow.of(lane, status)
                    continue
                row = TaskRow.of(item, status)
                self._tasks[item] = row
                history = self._history.setdefault(item, deque())
                history.append(HistoryPoint(stamp_s, row.p50_ms, row.p99_ms))
                while history and history[0].stamp_s < stamp_s - self.history_s:
                    history.popleft()
            if ours:
                self._updated_s = stamp_s
        return ours

    def record_miss(self, task: str) -> None:
        with self._lock:
            self._misses[task] += 1

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                tasks=tuple(self._tasks[name] for name in sorted(self._tasks)),
                lanes=tuple(self._lanes[name] for name in sorted(self._lanes)),
                history={name: tuple(points) for name, points in self._history.items()},
                miss_events=dict(self._misses), updated_s=self._updated_s)
