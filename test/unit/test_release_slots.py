"""One release per task period, on a grid, whatever the camera's rate and jitter."""

from __future__ import annotations

import itertools

from edge_perception.core.release_slots import ReleaseSlots

MS = 1_000_000


def released(stamps_ms: list[float], period_ms: float = 100.0) -> list[float]:
    slots = ReleaseSlots(round(period_ms * MS))
    return [t for t in stamps_ms if slots.admit(round(t * MS), round(t * MS))]


def camera(rate_hz: float, seconds: float) -> list[float]:
    return [i * 1000 / rate_hz for i in range(round(rate_hz * seconds))]


def test_a_fast_camera_releases_once_per_period_not_every_three_quarters() -> None:
    # 100 Hz into a 100 ms task: 10 releases a second (the gap rule alone gave 12.5).
    assert len(released(camera(100, 10.0))) == 101  # periods starting at 0, 100, ... 10000
    assert len(released(camera(960, 10.0))) == 101
    assert released(camera(100, 0.5)) == [0.0, 80.0, 180.0, 280.0, 380.0, 480.0]


def test_a_camera_at_the_task_rate_loses_no_frame_to_jitter() -> None:
    jittery = [0, 98, 203, 297, 380, 502, 601, 699]  # up to 20 ms early or late
    assert released(jittery) == jittery


def test_a_slower_multiple_takes_every_nth_frame() -> None:
    assert released(camera(30, 1.0)) == camera(30, 1.0)[::3]


def test_a_gap_in_the_stream_restarts_the_grid_at_the_next_frame() -> None:
    stamps = [0, 100, 200, 950, 1000, 1050, 1100]  # 750 ms without frames
    assert released(stamps) == [0, 100, 200, 950, 1050]


def test_frames_never_come_closer_than_three_quarters_of_a_period() -> None:
    got = released(camera(14, 3.0))  # 71 ms apart: no grid fits
    assert all(b - a >= 75 for a, b in itertools.pairwise(got))
    assert len(got) >= 20  # every second frame: 7 Hz


def test_stamps_that_go_backwards_are_judged_by_arrival() -> None:
    slots = ReleaseSlots(100 * MS)
    assert slots.admit(0, 5_000 * MS)
    assert not slots.admit(50 * MS, 0)  # a restarted source, 50 ms after: same period
    assert slots.admit(100 * MS, 50 * MS)
    assert not slots.admit(120 * MS, 70 * MS)  # by stamp again: 20 ms after the last
