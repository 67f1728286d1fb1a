"""Jobs and clocks: the values lanes schedule, and where they read the time from."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    """Time source of the scheduler, in integer nanoseconds (injectable for tests)."""

    def now_ns(self) -> int: ...


class MonotonicClock:
    """The real clock: time.monotonic_ns, immune to wall-clock jumps."""

    def now_ns(self) -> int:
        return time.monotonic_ns()


# A job's work: an iterator whose every ``next`` runs one non-preemptive stage.
Stages = Iterator[None]
_job_ids = itertools.count(1)


@dataclass(eq=False)
class Job:
    """One release of a task: its stages, timing and bookkeeping.

    ``stages`` is consumed one ``next`` at a time; between stages the lane may run a job of
    higher priority (limited preemption).
    """

    task: str
    priority: int
    release_ns: int
    deadline_ns: int  # absolute
    stages: Stages
    job_id: int = field(default_factory=lambda: next(_job_ids))
    started: bool = False
    stages_run: int = 0
    exec_ns: int = 0
    stage_ns: list[int] = field(default_factory=list)

    def sort_key(self) -> tuple[int, int, int]:
        return (self.priority, self.release_ns, self.job_id)


@dataclass(frozen=True)
class JobOutcome:
    """What happened to a job: completed (maybe late) or dropped, with its timing."""

    task: str
    job_id: int
    release_ns: int
    deadline_ns: int
    end_ns: int
    exec_ns: int
    stage_ns: tuple[int, ...]
    dropped: str | None  # None, or why: 'stale', 'displaced', 'aborted', 'failed'

    @property
    def response_ns(self) -> int:
        return self.end_ns - self.release_ns

    @property
    def missed(self) -> bool:
        return self.dropped is not None or self.end_ns > self.deadline_ns


OutcomeListener = Callable[[JobOutcome], None]
