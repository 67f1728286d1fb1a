"""The scheduler facade with a fake clock: periods, priorities, statistics, analysis."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_perception.core.config import load_config
from edge_perception.core.jobs import JobOutcome
from edge_perception.core.scheduler import DeadlineScheduler

from .fake_clock import FakeClock

MS = 1_000_000


Setup = tuple[DeadlineScheduler, FakeClock, list[JobOutcome]]


@pytest.fixture
def scheduler(repo_root: Path) -> Setup:
    clock, outcomes = FakeClock(), []
    config = load_config(repo_root / 'config' / 'f1tenth.yaml')
    return (DeadlineScheduler(config, clock=clock, devices={'cpu': 'cpu', 'gpu': 'cpu'},
                              on_outcome=outcomes.append), clock, outcomes)


def test_priorities_are_deadline_monotonic(scheduler: Setup) -> None:
    sched, _, _ = scheduler
    assert sched.priorities == {'traffic_light': 0, 'traffic_sign': 1}


def test_frames_inside_the_current_period_are_skipped(scheduler: Setup) -> None:
    sched, clock, _ = scheduler
    released = []
    for _ in range(9):  # a 30 Hz camera into a 100 ms task: every third frame
        released.append(sched.release('traffic_light', clock.work([1])) is not None)
        clock.advance_ms(33.4)
    assert released == [True, False, False, True, False, False, True, False, False]
    assert sched.stats['traffic_light'].skipped == 6
    assert sched.stats['traffic_light'].released == 3


def test_the_period_is_judged_by_frame_stamps_not_arrival_jitter(scheduler: Setup) -> None:
    sched, clock, _ = scheduler
    period_ms = 100

    def release(stamp_ms: float) -> bool:
        stamp_ns = round(stamp_ms * 1e6)
        return sched.release('traffic_light', clock.work([1]), stamp_ns=stamp_ns) is not None

    assert release(0)
    clock.advance_ms(130)  # the next frame was delayed in transport...
    assert release(period_ms)
    clock.advance_ms(40)  # ...so the one after it arrives early, yet it is a new period
    assert release(2 * period_ms)
    clock.advance_ms(100)
    assert not release(2 * period_ms + 50)  # inside the period by its stamp
    clock.advance_ms(100)
    assert release(10)  # the stamp went backwards (a restarted source): arrival decides
    assert sched.stats['traffic_light'].skipped == 1


def test_outcomes_feed_statistics_and_analysis(scheduler: Setup) -> None:
    sched, clock, outcomes = scheduler
    lane = sched.lanes['gpu']
    for _ in range(5):
        sched.release('traffic_light', clock.work([20, 10]))
        while lane.run_next():
            pass
        clock.advance_ms(80)
    stats = sched.stats['traffic_light']
    assert stats.completed == 5
    assert stats.misses == 0
    assert stats.typical_exec_ns() == 30 * MS
    assert stats.response_times().p99_ms == pytest.approx(30)
    margin = sched.config.wcet_margin
    assert sched.timing('traffic_light').stage_wcets == pytest.approx(
        (20 * MS * margin, 10 * MS * margin), abs=1)
    bound = sched.analysis()['traffic_light']
    assert bound.response_ns == pytest.approx(30 * MS * margin)
    assert bound.schedulable
    assert sched.timing('traffic_sign') is None  # never ran: not in the analysis
    assert len(outcomes) == 5
    assert sched.take_windows()['traffic_light'] == (5, 0)
    assert sched.take_windows()['traffic_light'] == (0, 0)


def test_the_analysis_pads_measured_maxima_by_the_configured_margin(scheduler: Setup) -> None:
    sched, clock, _ = scheduler
    verdicts = {}
    for margin in (1.0, 1.5):
        padded = DeadlineScheduler(dataclasses.replace(sched.config, wcet_margin=margin),
                                   clock=clock, devices={'cpu': 'cpu', 'gpu': 'cpu'})
        padded.release('traffic_light', clock.work([70]))  # deadline 100 ms
        while padded.lanes['gpu'].run_next():
            pass
        clock.advance_ms(100)
        verdicts[margin] = padded.analysis()['traffic_light']
    assert verdicts[1.0].schedulable
    assert verdicts[1.0].response_ns == 70 * MS
    assert not verdicts[1.5].schedulable
    assert verdicts[1.5].response_ns > 100 * MS  # 1.5 x 70 ms: over the period, unbounded


def test_a_frame_s_age_moves_its_deadline_and_its_transport_enters_the_analysis(
        scheduler: Setup) -> None:
    """The deadline runs from when the camera took the frame: a frame 30 ms old on release
    has 70 ms of its 100 left, and the analysis answers for the (padded) transport too."""
    sched, clock, outcomes = scheduler
    job = sched.release('traffic_light', clock.work([50]), input_delay_ns=30 * MS,
                        transport_ns=20 * MS)
    assert job is not None
    assert job.deadline_ns == job.release_ns + 70 * MS
    while sched.lanes['gpu'].run_next():
        pass
    assert not outcomes[-1].missed  # 30 + 50 = 80 ms
    clock.advance_ms(100)
    sched.release('traffic_light', clock.work([50]), input_delay_ns=60 * MS,
                  transport_ns=40 * MS)
    while sched.lanes['gpu'].run_next():
        pass
    assert outcomes[-1].missed  # 60 + 50 = 110 ms from the camera: late
    margin = sched.config.wcet_margin
    assert sched.timing('traffic_light').jitter_ns == pytest.approx(40 * MS * margin, abs=1)
    bound = sched.analysis()['traffic_light']
    assert bound.response_ns == pytest.approx((40 + 50) * MS * margin, abs=2)
    assert not bound.schedulable  # (40 + 50) x 1.3 = 117 ms > 100
    # /diagnostics says why: 65 ms of its own and 52 of release jitter.
    health = next(h for h in sched.task_report() if h.task == 'traffic_light')
    assert (health.rta_wcet_ms, health.rta_jitter_ms) == pytest.approx((65, 52), abs=1e-5)
    assert (health.rta_blocking_ms, health.rta_interference_ms) == pytest.approx((0, 0), abs=1e-5)


def test_the_spinning_thread_s_work_delays_every_lane_in_the_analysis(
        scheduler: Setup) -> None:
    sched, clock, _ = scheduler
    sched.release('traffic_light', clock.work([20]))
    while sched.lanes['gpu'].run_next():
        pass
    alone = sched.analysis()['traffic_light'].response_ns
    for i in range(5):  # a 30 Hz camera whose messages take 4 ms to take and release
        sched.spinning.record('/camera/image_raw', i * 33 * MS, 4 * MS)
    margin = sched.config.wcet_margin
    assert sched.analysis()['traffic_light'].response_ns == pytest.approx(
        alone + 4 * MS * margin, abs=2)


def test_misses_and_drops_are_counted(scheduler: Setup) -> None:
    sched, clock, _ = scheduler
    sched.release('traffic_sign', clock.work([250]))  # deadline 200 ms: late
    sched.lanes['cpu'].run_next()
    stats = sched.stats['traffic_sign']
    assert (stats.completed, stats.late, stats.misses, stats.miss_ratio) == (1, 1, 1, 1.0)
    assert sched.take_windows()['traffic_sign'] == (1, 1)


def test_lane_report_shows_fallback_and_utilisation(scheduler: Setup) -> None:
    sched, clock, _ = scheduler
    sched.lane_report()
    sched.release('traffic_light', clock.work([25]))
    sched.lanes['gpu'].run_next()
    clock.advance_ms(75)
    reports = {r.lane: r for r in sched.lane_report()}
    assert reports['gpu'].fallback
    assert reports['gpu'].device == 'cpu'
    assert reports['gpu'].utilisation == pytest.approx(0.25)
    assert not reports['cpu'].fallback
    assert reports['cpu'].utilisation == 0.0


def failing_stages() -> Iterator[None]:
    yield
    raise RuntimeError('broken model')


def test_a_task_that_keeps_failing_is_isolated_and_the_other_keeps_its_deadlines(
        repo_root: Path) -> None:
    clock, outcomes = FakeClock(), []
    config = load_config(repo_root / 'config' / 'f1tenth.yaml')
    config = dataclasses.replace(config, tasks=tuple(
        dataclasses.replace(t, lane='cpu', stages=('cpu',)) for t in config.tasks))
    sched = DeadlineScheduler(config, clock=clock, devices={'cpu': 'cpu', 'gpu': 'cpu'},
                              on_outcome=outcomes.append)
    lane = sched.lanes['cpu']
    signs_released = []
    for _ in range(30):  # 3 s at 10 Hz
        sched.release('traffic_light', clock.work([20]))
        signs_released.append(sched.release('traffic_sign', failing_stages()) is not None)
        while lane.run_next():
            pass
        clock.advance_ms(80)
    guard = sched.guards['traffic_sign']
    # 3 failures (200 ms period: 0, 0.2, 0.4 s) isolate for 1 s; the probation job at
    # ~1.4 s fails again: isolated for 2 s.
    assert guard.isolations == 2
    assert sched.stats['traffic_sign'].drops['failed'] == 4
    assert sched.stats['traffic_sign'].refused > 0
    assert signs_released.count(True) == 4
    lights = [o for o in outcomes if o.task == 'traffic_light']
    assert len(lights) == 30
    assert not any(o.missed for o in lights)


def test_one_slow_run_cannot_get_every_later_job_dropped_as_stale(scheduler: Setup) -> None:
    """A cold first run slower than the deadline makes the estimate say "cannot make it";
    after a few stale drops a job runs anyway, its fast time renews the estimate and the task
    meets its deadlines again."""
    sched, clock, outcomes = scheduler
    lane = sched.lanes['gpu']

    def period(exec_ms: float) -> None:
        sched.release('traffic_light', clock.work([exec_ms]))
        clock.advance_ms(1)  # it waited behind something: now + 120 ms > deadline
        lane.run_next()
        clock.advance_ms(100)

    period(120)  # the cold run: late, and the only measurement
    for _ in range(6):
        period(10)
    drops = [o.dropped for o in outcomes]
    assert drops[1:4] == ['stale'] * 3
    assert drops[4:] == [None] * 3  # the probe, then jobs judged by its 10 ms
    assert sched.stats['traffic_light'].expected_exec_ns() == 10 * MS  # median of 120, 10, 10, 10
