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

from edge_perception.core.health import STALE, LaneHealth, TaskHealth, health_of

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
    # Its terms: WCET, blocking, interference, release jitter (ms).
    rta_terms_ms: tuple[float, float, float, float] = (math.nan,) * 4
    engine: str = ''  # what ran its models: tvm, onnxruntime or both

    @classmethod
    def of(cls, health: TaskHealth) -> TaskRow:
        h = health
        return cls(task=h.task, level=h.level, message=h.message, lane=h.lane,
                   variant=h.variant, period_ms=h.period_ms, deadline_ms=h.deadline_ms,
                   p50_ms=h.response_p50_ms, p99_ms=h.response_p99_ms,
                   miss_ratio=h.miss_ratio, recent_miss_ratio=h.recent_miss_ratio,
                   jobs=h.jobs, misses=h.misses, drops=h.dropped, bad_frames=h.bad_frames,
                   schedulable=('unknown' if h.schedulable is None
                                else str(h.schedulable).lower()),
                   late=h.late, skipped=h.skipped_frames + h.refused_frames,
                   rta_ms=h.rta_response_ms, engine=h.engine,
                   rta_terms_ms=(h.rta_wcet_ms, h.rta_blocking_ms, h.rta_interference_ms,
                                 h.rta_jitter_ms))


@dataclass(frozen=True)
class LaneRow:
    lane: str
    level: int
    device: str
    fallback: bool
    utilisation: float
    queued: int

    @classmethod
    def of(cls, health: LaneHealth) -> LaneRow:
        return cls(lane=health.lane, level=health.level, device=health.device,
                   fallback=health.fallback, utilisation=health.utilisation,
                   queued=sum(health.queued.values()))


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
                health = health_of(status.name, level=status.level, message=status.message,
                                   hardware_id=status.hardware_id, values=status.values)
                if health is None:
                    continue  # other components share /diagnostics
                ours += 1
                if isinstance(health, LaneHealth):
                    self._lanes[health.lane] = LaneRow.of(health)
                    continue
                row = TaskRow.of(health)
                self._tasks[row.task] = row
                history = self._history.setdefault(row.task, deque())
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
