"""The packing rule on made-up latencies (pure logic, no clock)."""

from __future__ import annotations

from edge_perception.core.batching import packable

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
