"""Fault isolation: consecutive faults isolate a task, the back-off doubles, success heals."""

from __future__ import annotations

from edge_perception.core.fault_guard import NS_PER_S, FaultGuard


def test_three_failures_in_a_row_isolate_for_the_base_backoff() -> None:
    guard = FaultGuard()
    assert guard.record(failed=True, overran=False, now_ns=0) is None
    assert guard.record(failed=True, overran=False, now_ns=0) is None
    message = guard.record(failed=True, overran=False, now_ns=10)
    assert message == 'isolated after 3 consecutive failures; jobs refused for 1 s'
    assert guard.isolated(10 + NS_PER_S - 1)
    assert guard.admits(10 + NS_PER_S)


def test_a_success_in_between_resets_the_count() -> None:
    guard = FaultGuard()
    for failed in (True, True, False, True, True):
        assert guard.record(failed=failed, overran=False, now_ns=0) is None
    assert guard.admits(0)


def test_overruns_isolate_only_after_a_long_run() -> None:
    guard = FaultGuard()
    messages = [guard.record(failed=False, overran=True, now_ns=0) for _ in range(20)]
    assert messages[:19] == [None] * 19  # a contended machine makes a few in a row
    assert messages[-1] == 'isolated after 20 consecutive overruns; jobs refused for 1 s'


def test_probation_failure_doubles_the_backoff_up_to_the_cap() -> None:
    guard = FaultGuard(max_backoff_ns=3 * NS_PER_S)
    messages = [guard.record(failed=True, overran=False, now_ns=0) for _ in range(3)]
    assert messages[-1] == 'isolated after 3 consecutive failures; jobs refused for 1 s'
    assert guard.isolated_until_ns == NS_PER_S
    assert guard.record(failed=True, overran=False, now_ns=NS_PER_S) is not None
    assert guard.isolated_until_ns == 3 * NS_PER_S  # 2 s back-off
    guard.record(failed=True, overran=False, now_ns=3 * NS_PER_S)
    assert guard.isolated_until_ns == 6 * NS_PER_S  # 4 s capped to 3 s
    assert guard.isolations == 3
    guard.record(failed=False, overran=False, now_ns=6 * NS_PER_S)
    for _ in range(3):
        guard.record(failed=True, overran=False, now_ns=7 * NS_PER_S)
    assert guard.isolated_until_ns == 8 * NS_PER_S  # healed: back to the base back-off
