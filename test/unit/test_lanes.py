"""Lane dispatch with a fake clock: priority order, limited preemption, overload policy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from edge_perception.core.jobs import Job, JobOutcome
from edge_perception.core.lanes import Lane, LaneWorker

from .fake_clock import FakeClock

MS = 1_000_000


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


class Recorder:
    def __init__(self) -> None:
        self.outcomes: list[JobOutcome] = []
        self.best: dict[str, int] = {}

    def __call__(self, outcome: JobOutcome) -> None:
        self.outcomes.append(outcome)

    def by_task(self, task: str) -> list[JobOutcome]:
        return [o for o in self.outcomes if o.task == task]


def make_lane(clock: FakeClock, recorder: Recorder, queue_limit: int = 1) -> Lane:
    return Lane(name='cpu', clock=clock, on_outcome=recorder,
                best_exec_ns=lambda task: recorder.best.get(task, 0),
                queue_limit=queue_limit)


def job(clock: FakeClock, task: str, priority: int, deadline_ms: float,
        stages: Iterator[None]) -> Job:
    return Job(task=task, priority=priority, release_ns=clock.now,
               deadline_ns=clock.now + round(deadline_ms * MS), stages=stages)


def run_all(lane: Lane) -> None:
    while lane.run_next():
        pass


def test_higher_priority_runs_first_under_contention(clock: FakeClock) -> None:
    recorder, log = Recorder(), []
    lane = make_lane(clock, recorder)
    lane.submit(job(clock, 'low', 2, 500, clock.work([10], log, 'low')))
    lane.submit(job(clock, 'mid', 1, 500, clock.work([10], log, 'mid')))
    lane.submit(job(clock, 'high', 0, 500, clock.work([10], log, 'high')))
    run_all(lane)
    assert log == ['high0', 'mid0', 'low0']
    assert [o.task for o in recorder.outcomes] == ['high', 'mid', 'low']
    assert recorder.by_task('low')[0].response_ns == 30 * MS


def test_high_priority_waits_at_most_one_stage(clock: FakeClock) -> None:
    recorder, log = Recorder(), []
    lane = make_lane(clock, recorder)
    lane.submit(job(clock, 'low', 1, 500, clock.work([10, 10, 10], log, 'low')))
    assert lane.run_next()  # low's first stage runs: nothing else was ready
    lane.submit(job(clock, 'high', 0, 500, clock.work([5], log, 'high')))
    run_all(lane)
    assert log == ['low0', 'high0', 'low1', 'low2']
    assert recorder.by_task('high')[0].response_ns == 5 * MS


def test_newest_frame_displaces_the_waiting_one(clock: FakeClock) -> None:
    recorder = Recorder()
    lane = make_lane(clock, recorder)
    first = job(clock, 'cam', 0, 500, clock.work([10]))
    lane.submit(first)
    clock.advance_ms(1)
    second = job(clock, 'cam', 0, 500, clock.work([10]))
    lane.submit(second)
    assert recorder.outcomes[0].job_id == first.job_id
    assert recorder.outcomes[0].dropped == 'displaced'
    assert recorder.outcomes[0].missed
    run_all(lane)
    assert recorder.outcomes[1].job_id == second.job_id
    assert recorder.outcomes[1].dropped is None
    assert lane.queued() == {'cam': 0}


def test_started_jobs_are_never_displaced(clock: FakeClock) -> None:
    recorder = Recorder()
    lane = make_lane(clock, recorder)
    lane.submit(job(clock, 'cam', 0, 500, clock.work([10, 10])))
    lane.run_next()
    lane.submit(job(clock, 'cam', 0, 500, clock.work([10])))
    assert recorder.outcomes == []  # the running job and one waiting job may coexist
    run_all(lane)
    assert [o.dropped for o in recorder.outcomes] == [None, None]


def test_stale_job_is_dropped_before_it_starts(clock: FakeClock) -> None:
    recorder = Recorder()
    recorder.best['late'] = 30 * MS
    lane = make_lane(clock, recorder)
    lane.submit(job(clock, 'blocker', 0, 500, clock.work([80])))
    lane.submit(job(clock, 'late', 1, 100, clock.work([30])))
    run_all(lane)
    late = recorder.by_task('late')[0]
    assert late.dropped == 'stale'  # at 80 ms, 80 + 30 > 100
    assert late.exec_ns == 0


def test_started_job_past_its_deadline_is_aborted_between_stages(clock: FakeClock) -> None:
    recorder = Recorder()
    lane = make_lane(clock, recorder)
    lane.submit(job(clock, 'slow', 0, 50, clock.work([40, 40, 40])))
    run_all(lane)
    (outcome,) = recorder.outcomes
    assert outcome.dropped == 'aborted'
    assert outcome.exec_ns == 80 * MS  # the third stage never ran


def test_late_completion_counts_as_a_miss(clock: FakeClock) -> None:
    recorder = Recorder()
    lane = make_lane(clock, recorder)
    lane.submit(job(clock, 'slow', 0, 50, clock.work([60])))
    run_all(lane)
    (outcome,) = recorder.outcomes
    assert outcome.dropped is None
    assert outcome.missed


def test_failing_stage_ends_its_job_and_the_lane_carries_on(clock: FakeClock) -> None:
    recorder = Recorder()
    lane = make_lane(clock, recorder)

    def broken() -> Iterator[None]:
        clock.advance_ms(1)
        raise RuntimeError('model exploded')
        yield

    lane.submit(job(clock, 'broken', 0, 500, broken()))
    lane.submit(job(clock, 'fine', 1, 500, clock.work([5])))
    run_all(lane)
    assert [(o.task, o.dropped) for o in recorder.outcomes] == [('broken', 'failed'),
                                                                ('fine', None)]


def test_queue_limit_must_be_positive(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match=r'queue_limit must be >= 1, got 0'):
        make_lane(clock, Recorder(), queue_limit=0)


def test_worker_thread_runs_jobs_and_stops_cleanly(clock: FakeClock) -> None:
    recorder = Recorder()
    lane = make_lane(clock, recorder, queue_limit=4)
    worker = LaneWorker(lane)
    worker.start()
    for index in range(3):
        lane.submit(job(clock, f'task{index}', index, 10_000, iter(())))
    while len(recorder.outcomes) < 3:
        with lane.changed:
            lane.changed.wait(0.01)
    assert worker.stop()
    assert sorted(o.task for o in recorder.outcomes) == ['task0', 'task1', 'task2']


def test_stopping_drains_queued_jobs(clock: FakeClock) -> None:
    recorder = Recorder()
    lane = make_lane(clock, recorder, queue_limit=4)
    lane.submit(job(clock, 'a', 0, 500, clock.work([1])))
    lane.drain()
    assert [o.dropped for o in recorder.outcomes] == ['aborted']
    assert len(lane) == 0
