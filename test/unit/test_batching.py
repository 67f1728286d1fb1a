"""Batch-size rules on made-up latencies (pure logic, no clock)."""

from __future__ import annotations

from edge_perception.core.batching import largest_feasible_batch, packable

MS = 1_000_000
# Sub-linear latency, as on a GPU: 10 ms for one frame, 16 for two, 28 for four.
LATENCY = {1: 10 * MS, 2: 16 * MS, 4: 28 * MS}


def test_kum_rule_matches_the_frame_budget() -> None:
    period = round(1e9 / 30)  # 30 fps
    # B=2: 33.3 + 16 = 49.3 ms; B=4: 100 + 28 = 128 ms.
    assert largest_feasible_batch(LATENCY, frame_period_ns=period, deadline_ns=50 * MS) == 2
    assert largest_feasible_batch(LATENCY, frame_period_ns=period, deadline_ns=130 * MS) == 4
    assert largest_feasible_batch(LATENCY, frame_period_ns=period, deadline_ns=40 * MS) == 1


def test_kum_rule_falls_back_to_one_frame() -> None:
    assert largest_feasible_batch({1: 80 * MS}, frame_period_ns=33 * MS,
                                  deadline_ns=50 * MS) == 1


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
