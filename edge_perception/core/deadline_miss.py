"""The value describing one job that missed its deadline."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeadlineMissEvent:
    """A job that finished after, or was dropped before, its absolute deadline."""

    task: str
    lane: str
    variant: str
    job_id: int
    release_ns: int
    deadline_ns: int
    response_time_ns: int
    dropped: bool
