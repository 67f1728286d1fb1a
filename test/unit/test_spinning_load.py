"""The spinning thread's measured work, as periodic interference for the analysis."""

from __future__ import annotations

import threading
import time

import pytest

from edge_perception.core.spinning_load import COLD_RUNS, SpinningLoad

MS = 1_000_000


def test_a_camera_s_rate_is_its_stamps_and_its_jitter_the_spread_of_its_transport() -> None:
    """Taken in bursts (the spinning thread was busy), a 50 Hz camera is still a 50 Hz
    camera: 20 ms between stamps; transport 2-9 ms, so jobs may bunch by 7 ms. The stamps'
    clock may be another machine's: only differences count."""
    load = SpinningLoad()
    offset = 10**15  # the camera's clock
    for index, transport in enumerate((2, 2, 9, 3, 2, 2)):
        stamp = offset + index * 20 * MS
        load.record('/camera', stamp - offset + transport * MS, MS, stamp_ns=stamp)
    (timing,) = load.interference(['gpu'], 1.0)
    assert (timing.period_ns, timing.jitter_ns, timing.wcet_ns) == (20 * MS, 7 * MS, MS)


def test_a_task_s_release_runs_at_the_task_s_period() -> None:
    load = SpinningLoad()
    for index in range(COLD_RUNS + 2):  # a frame every 100 ms would do, whatever the camera
        load.record('release of traffic_light', index * 100 * MS, 3 * MS,
                    period_ns=100 * MS, stamp_ns=index * 100 * MS)
    (timing,) = load.interference(['gpu'], 1.0)
    assert (timing.period_ns, timing.jitter_ns, timing.wcet_ns) == (100 * MS, 0, 3 * MS)


def test_without_stamps_the_rate_and_jitter_come_from_the_arrivals() -> None:
    load = SpinningLoad()
    # A 50 Hz camera, one message 6 ms late (so the next came 6 ms early); 3 ms at most each
    # once warm.
    for start, cost in ((0, 9), (20, 9), (46, 3), (60, 2), (80, 2)):
        load.record('/camera', start * MS, cost * MS)
    (timing,) = load.interference(['cpu'], 1.0)
    assert (timing.lane, timing.period_ns, timing.wcet_ns) == ('cpu', 20 * MS, 3 * MS)
    assert timing.jitter_ns == 6 * MS  # 20 - the shortest gap (14)
    assert timing.name == 'spinning thread: /camera'


def test_a_timer_has_its_own_period_and_costs_are_padded_per_lane() -> None:
    load = SpinningLoad()
    for second in range(COLD_RUNS + 1):
        load.record('diagnostics', second * 1000 * MS, 4 * MS, period_ns=1000 * MS)
    timings = load.interference(['cpu', 'gpu'], 1.5)
    assert [t.lane for t in timings] == ['cpu', 'gpu']
    assert all(t.period_ns == 1000 * MS and t.jitter_ns == 0 for t in timings)
    assert timings[0].wcet_ns == pytest.approx(6 * MS)


def test_a_run_recorded_after_a_report_counts_in_the_next() -> None:
    """One report asks for the timings per lane and for the analysis: they are computed once,
    and again as soon as the spinning thread ran anything since."""
    load = SpinningLoad()
    for second in range(COLD_RUNS + 1):
        load.record('diagnostics', second * 1000 * MS, 4 * MS, period_ns=1000 * MS)
    assert [t.wcet_ns for t in load.interference(['gpu'], 1.0)] == [4 * MS]
    assert load.interference(['cpu'], 2.0)[0].wcet_ns == 8 * MS
    load.record('diagnostics', 5000 * MS, 7 * MS, period_ns=1000 * MS)
    assert [t.wcet_ns for t in load.interference(['gpu'], 1.0)] == [7 * MS]


def test_a_source_without_a_known_rate_is_left_out() -> None:
    load = SpinningLoad()
    load.record('/camera', 0, MS)
    load.record('/camera', 33 * MS, MS)  # one gap: not yet a rate
    load.record('busy timer', 0, MS, period_ns=0)
    for _ in range(3):
        load.record('/burst', 5 * MS, MS)  # all at once: no period at all
    assert load.interference(['cpu'], 1.0) == []


def test_cold_first_runs_are_left_out_of_the_cost() -> None:
    load = SpinningLoad()
    for run in range(COLD_RUNS):
        load.record('diagnostics', run * 1000 * MS, 15 * MS, period_ns=1000 * MS)
    assert load.interference(['cpu'], 1.0) == []  # nothing warm measured yet
    load.record('diagnostics', COLD_RUNS * 1000 * MS, 2 * MS, period_ns=1000 * MS)
    (timing,) = load.interference(['cpu'], 1.0)
    assert timing.wcet_ns == 2 * MS


def test_the_followed_thread_s_cpu_time_is_read_from_another_thread() -> None:
    """Lanes read the spinning thread's CPU clock around each stage: while it sleeps it
    uses none, while it computes about its wall time."""
    load = SpinningLoad()
    assert load.cpu_ns() == 0  # nothing followed yet
    followed, compute, computed, finish = (threading.Event() for _ in range(4))

    def spinning_thread() -> None:
        load.follow_current_thread()
        followed.set()
        compute.wait()
        until = time.monotonic() + 0.05
        while time.monotonic() < until:
            pass
        computed.set()
        finish.wait()

    thread = threading.Thread(target=spinning_thread)
    thread.start()
    followed.wait()
    before = load.cpu_ns()
    time.sleep(0.05)
    slept = load.cpu_ns() - before
    compute.set()
    computed.wait()
    busy = load.cpu_ns() - before - slept
    finish.set()
    thread.join()
    assert slept < 10 * MS
    assert busy > 25 * MS
