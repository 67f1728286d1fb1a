"""Frame-stamp rules: future and out-of-order frames are refused, a restart is accepted."""

from __future__ import annotations

from edge_perception.core.stamp_gate import NS_PER_S, StampGate

NOW = 1000 * NS_PER_S
MS = 1_000_000


def test_in_order_frames_pass() -> None:
    gate = StampGate()
    assert [gate.check(NOW + i * 33 * MS, NOW + i * 33 * MS) for i in range(3)] == [None] * 3


def test_future_stamps_are_refused_beyond_the_tolerance() -> None:
    gate = StampGate()
    assert gate.check(NOW + 900 * MS, NOW) is None  # clock skew within a second
    assert gate.check(NOW + 5 * NS_PER_S, NOW) == 'future_stamp'
    assert gate.last_ns == NOW + 900 * MS  # a refused frame does not move the gate


def test_out_of_order_frames_are_refused() -> None:
    gate = StampGate()
    assert gate.check(NOW, NOW) is None
    assert gate.check(NOW - 100 * MS, NOW) == 'out_of_order_stamp'
    assert gate.check(NOW, NOW) is None  # an equal stamp (a second camera) is fine


def test_a_jump_far_back_is_a_restart() -> None:
    gate = StampGate()
    assert gate.check(NOW, NOW) is None
    assert gate.check(NOW - 60 * NS_PER_S, NOW) is None  # a bag looped
    assert gate.restarts == 1
    assert gate.check(NOW - 60 * NS_PER_S + 33 * MS, NOW) is None
