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
        self.expected: dict[str, int] = {}

    def __call__(self, outcome: JobOutcome) -> None:
        self.outcomes.append(outcome)

    def by_task(self, task: str) -> list[JobOutcome]:
        return [o for o in self.outcomes if o.task == task]


def make_lane(clock: FakeClock, recorder: Recorder, queue_limit: int = 1) -> Lane:
    return Lane(name='cpu', clock=clock, on_outcome=recorder,
                expected_exec_ns=lambda task: recorder.expected.get(task, 0),
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
    recorder.expected['late'] = 30 * MS
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


class FakeRequest:
    """A batchable request: 'runs' by advancing the clock by the batch's latency."""

    def __init__(self, clock: FakeClock, key: str, value: int,
                 latency_ms: dict[int, float], lane: str | None = None) -> None:
        self.clock, self.key, self.value, self.latency_ms = clock, key, value, latency_ms
        self.lane = lane
        self.calls: list[int] = []

    def batch_latency_ns(self, size: int) -> int | None:
        ms = self.latency_ms.get(size)
        return None if ms is None else round(ms * MS)

    def run_together(self, others: list[FakeRequest]) -> list[int]:
        self.calls.append(1 + len(others))
        self.clock.advance_ms(self.latency_ms[1 + len(others)])
        return [r.value * 10 for r in (self, *others)]


def requesting(clock: FakeClock, key: str, value: int, results: list[int],
               latency_ms: dict[int, float]) -> Iterator[object]:
    output = yield FakeRequest(clock, key, value, latency_ms)
    results.append(output)


def test_jobs_waiting_for_the_same_model_run_as_one_batch(clock: FakeClock) -> None:
    recorder, results = Recorder(), []
    lane = Lane(name='gpu', clock=clock, on_outcome=recorder, expected_exec_ns=lambda _: 0,
                max_batch=4)
    latency = {1: 10, 2: 12, 3: 14}
    for index, task in enumerate(('cam_a', 'cam_b', 'cam_c')):
        lane.submit(job(clock, task, index, 100, requesting(clock, 'detector', index,
                                                            results, latency)))
    lane.submit(job(clock, 'other', 3, 100, requesting(clock, 'classifier', 9, results,
                                                       latency)))
    run_all(lane)
    assert lane.batched_calls == 1
    assert sorted(results) == [0, 10, 20, 90]  # every job got its own output back
    assert {o.task: o.response_ns // MS for o in recorder.outcomes} == {
        'cam_a': 14, 'cam_b': 14, 'cam_c': 14, 'other': 24}


def test_packing_never_breaks_a_member_deadline(clock: FakeClock) -> None:
    recorder, results = Recorder(), []
    lane = Lane(name='gpu', clock=clock, on_outcome=recorder, expected_exec_ns=lambda _: 0,
                max_batch=4)
    latency = {1: 10, 2: 30}
    lane.submit(job(clock, 'urgent', 0, 20, requesting(clock, 'detector', 1, results, latency)))
    lane.submit(job(clock, 'relaxed', 1, 100, requesting(clock, 'detector', 2, results,
                                                         latency)))
    run_all(lane)
    assert lane.batched_calls == 0  # a pair takes 30 ms: the urgent job would miss
    assert [o.missed for o in recorder.outcomes] == [False, False]


def test_batch_size_limit_is_respected(clock: FakeClock) -> None:
    lane = Lane(name='gpu', clock=clock, on_outcome=Recorder(), expected_exec_ns=lambda _: 0,
                max_batch=1)
    results: list[int] = []
    latency = {1: 1, 2: 1}
    for index in range(2):
        lane.submit(job(clock, f't{index}', index, 100,
                        requesting(clock, 'detector', index, results, latency)))
    run_all(lane)
    assert lane.batched_calls == 0
    assert len(results) == 2


def test_max_batch_must_be_positive(clock: FakeClock) -> None:
    with pytest.raises(ValueError, match=r'lane cpu: max_batch must be >= 1, got 0'):
        Lane(name='cpu', clock=clock, on_outcome=Recorder(), expected_exec_ns=lambda _: 0,
             max_batch=0)


def test_a_stage_for_another_lane_moves_the_job_there(clock: FakeClock) -> None:
    recorder, results = Recorder(), []
    lanes: dict[str, Lane] = {}
    for name in ('cpu', 'gpu'):
        lanes[name] = Lane(name=name, clock=clock, on_outcome=recorder,
                           expected_exec_ns=lambda task: 0,
                           hand_over=lambda lane, job: lanes[lane].accept(job))

    def pipelined(value: int) -> Iterator[object]:
        first = yield FakeRequest(clock, 'front', value, {1: 5}, lane='cpu')
        results.append((yield FakeRequest(clock, 'back', first, {1: 5}, lane='gpu')))

    lanes['cpu'].submit(job(clock, 'frame1', 0, 500, pipelined(1)))
    lanes['cpu'].submit(job(clock, 'frame2', 1, 500, pipelined(2)))
    assert lanes['cpu'].run_next()  # frame1's front half, then it moves on
    assert (len(lanes['cpu']), len(lanes['gpu'])) == (1, 1)
    assert lanes['gpu'].run_next()  # frame1's back half: the cpu lane is free for frame2
    assert lanes['cpu'].run_next()
    assert (len(lanes['cpu']), len(lanes['gpu'])) == (0, 1)
    assert lanes['gpu'].run_next()
    assert results == [100, 200]
    assert [(o.task, o.dropped) for o in recorder.outcomes] == [('frame1', None), ('frame2', None)]


class CpuCounters:
    """The lane thread's and the spinning thread's CPU clocks, moved by hand."""

    def __init__(self) -> None:
        self.lane = 0
        self.spinning = 0


def stage_ms_with(clock: FakeClock, counters: CpuCounters, *, lane_ms: float,
                  spinning_ms: float, wall_ms: float) -> float:
    recorder = Recorder()
    lane = Lane(name='gpu', clock=clock, on_outcome=recorder, expected_exec_ns=lambda _: 0,
                spinning_cpu_ns=lambda: counters.spinning, thread_cpu_ns=lambda: counters.lane)

    def stage() -> Iterator[None]:
        yield
        counters.lane += round(lane_ms * MS)
        counters.spinning += round(spinning_ms * MS)
        clock.advance_ms(wall_ms)

    lane.submit(job(clock, 'light', 0, 500, stage()))
    run_all(lane)
    (outcome,) = recorder.outcomes
    return outcome.stage_ns[0] / MS


def test_spinning_work_that_kept_the_lane_waiting_is_not_the_stage_s_time(
        clock: FakeClock) -> None:
    """The analysis counts the spinning thread's work as interference: inside the stage's
    time it would count twice. Only the part the lane waited for comes out."""
    counters = CpuCounters()
    # Shared core: 6 ms of the lane's own work, 4 ms of diagnostics in between.
    assert stage_ms_with(clock, counters, lane_ms=6, spinning_ms=4, wall_ms=10) == 6
    # Another core: both ran at once, the lane never waited.
    assert stage_ms_with(clock, counters, lane_ms=10, spinning_ms=4, wall_ms=10) == 10
    # The lane waited 5 ms (a GPU, a thread pool) and the spinning thread ran 2 ms of it.
    assert stage_ms_with(clock, counters, lane_ms=5, spinning_ms=2, wall_ms=10) == 8
