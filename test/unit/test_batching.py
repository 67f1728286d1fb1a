"""The packing and batch-size rules on made-up latencies (pure logic, no clock)."""

from __future__ import annotations

from edge_perception.core.batching import BatchSizer, frame_budget_batch, packable

MS = 1_000_000
# Sub-linear latency, as on a GPU: 10 ms for one frame, 16 for two, 28 for four.
LATENCY = {1: 10 * MS, 2: 16 * MS, 4: 28 * MS}


def test_packing_keeps_every_member_deadline() -> None:
    now = 1000 * MS
    assert packable(LATENCY, now_ns=now, deadlines_ns=[now + 20 * MS, now + 40 * MS]) == 2
    # the most urgent job would miss in a pair (16 ms > 15 ms): no packing
    assert packable(LATENCY, now_ns=now, deadlines_ns=[now + 15 * MS, now + 40 * MS]) == 1


def test_packing_uses_only_measured_batch_sizes() -> None:
    now = 0
    deadlines = [100 * MS] * 3
    assert packable(LATENCY, now_ns=now, deadlines_ns=deadlines) == 2  # no latency for 3
    assert packable(LATENCY, now_ns=now, deadlines_ns=[*deadlines, 100 * MS]) == 4


def test_kum_rule_picks_the_largest_batch_inside_the_frame_budget() -> None:
    # Kum et al.'s tables: at 30 fps a batch of B must finish within B/30 s.
    period = 33 * MS
    assert frame_budget_batch(LATENCY, period_ns=period, deadline_ns=200 * MS) == 4
    # A tight deadline: the first frame of a batch of 4 waits 3 periods (99 ms) + 28 ms.
    assert frame_budget_batch(LATENCY, period_ns=period, deadline_ns=120 * MS) == 2
    assert frame_budget_batch(LATENCY, period_ns=period, deadline_ns=30 * MS) == 1


def test_kum_rule_needs_the_batch_to_keep_up_with_the_camera() -> None:
    slow = {1: 40 * MS, 2: 70 * MS, 4: 150 * MS}  # 4 frames take longer than 4 periods
    assert frame_budget_batch(slow, period_ns=35 * MS, deadline_ns=1000 * MS) == 2
    assert frame_budget_batch(slow, period_ns=10 * MS, deadline_ns=1000 * MS) == 1


def test_batch_size_is_re_chosen_only_when_latencies_drift() -> None:
    measured = dict(LATENCY)
    sizer = BatchSizer(lambda: measured, period_ns=33 * MS, deadline_ns=200 * MS)
    assert sizer.size() == 4
    measured[4] = 31 * MS  # +11 %: noise, the choice stands
    assert sizer.size() == 4
    measured[4] = 140 * MS  # the batch of 4 no longer keeps up with the camera
    assert sizer.size() == 2
    assert sizer.changes == 1
    measured[4] = 28 * MS
    assert sizer.size() == 4
