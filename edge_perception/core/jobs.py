"""Jobs and clocks: the values lanes schedule, and where they read the time from."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Generator, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class Clock(Protocol):
    """Time source of the scheduler, in integer nanoseconds (injectable for tests)."""

    def now_ns(self) -> int: ...


class MonotonicClock:
    """The real clock: time.monotonic_ns, immune to wall-clock jumps."""

    def now_ns(self) -> int:
        return time.monotonic_ns()


class Request(Protocol):
    """Work a job hands to its lane (an inference). Requests with equal keys may run
    together as one batch when the lane packs jobs."""

    @property
    def key(self) -> Hashable: ...

    @property
    def lane(self) -> str | None:
        """The lane that must run it (a pipelined stage), or None: the job's current lane."""
        ...

    def batch_latency_ns(self, size: int) -> int | None:
        """Measured latency of a batch of ``size`` such requests (None: not available)."""
        ...

    def run_together(self, others: Sequence[Request]) -> list[Any]:
        """Run this request and ``others`` as one call; outputs in that order."""
        ...


# A job's work, as a generator. The code before its first yield runs at release (cheap
# preparation); every later step runs on the lane. Yielding None ends a non-preemptive
# stage; yielding a Request asks the lane to run it (maybe batched with other jobs') and
# send its output back at the job's next step.
Stages = Generator[Request | None, Any, None]
_job_ids = itertools.count(1)


def run_to_completion(stages: Stages) -> None:
    """Run a job's generator in the calling thread, each request alone (stock executors)."""
    result: Any = None
    try:
        while True:
            request = stages.send(result)
            result = None if request is None else request.run_together([])[0]
    except StopIteration:
        return


@dataclass(eq=False)
class Job:
    """One release of a task: its stages, timing and bookkeeping.

    ``stages`` advances one step at a time; between steps the lane may run a job of higher
    priority (limited preemption). ``pending`` is the request the job waits to have run.
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
    pending: Request | None = None
    result: Any = None

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
