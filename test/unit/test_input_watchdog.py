"""A silent camera is a WARN, then an ERROR, for every task on it (fake clock)."""

from __future__ import annotations

import pytest

from edge_perception.core.input_watchdog import ERROR, OK, WARN, InputWatchdog

S = 1_000_000_000


def watchdog(period_s: float = 0.1) -> InputWatchdog:
    return InputWatchdog(round(period_s * S), warn_periods=10, error_periods=40, started_ns=0)


def test_silence_is_ok_then_warn_then_error_from_the_last_frame() -> None:
    dog = watchdog()
    dog.frame(5 * S)
    assert dog.verdict(5 * S + S - 1).level == OK
    warn = dog.verdict(6 * S)
    assert (warn.level, warn.last_frame_ns) == (WARN, 5 * S)
    assert warn.message == 'no frame for 1.0 s (10 periods): is the camera running?'
    assert dog.verdict(9 * S - 1).level == WARN
    assert dog.verdict(9 * S).level == ERROR
    dog.frame(9 * S)
    assert dog.verdict(9 * S).level == OK


def test_before_the_first_frame_silence_counts_from_the_start() -> None:
    verdict = watchdog().verdict(2 * S)
    assert (verdict.level, verdict.last_frame_ns) == (WARN, None)
    assert verdict.message.startswith('no frame yet (20 periods)')


def test_a_short_period_waits_at_least_a_second() -> None:
    dog = watchdog(period_s=0.01)  # ten periods: 100 ms, a camera's jitter
    assert dog.verdict(S - 1).level == OK
    assert dog.verdict(S).level == WARN
    assert dog.verdict(2 * S).level == ERROR  # at least twice the warning's silence


def test_thresholds_out_of_order_are_refused() -> None:
    with pytest.raises(ValueError, match=r'need 0 < warn_periods \(5\) <= error_periods \(2\)'):
        InputWatchdog(S, warn_periods=5, error_periods=2, started_ns=0)
