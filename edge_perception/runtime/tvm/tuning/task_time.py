"""Where a model's time goes, per tuning task: measured where records exist, else estimated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def best_run_seconds(records: Any, function: Any) -> float | None:
    """The best measured run of a TIR function in tuning ``records`` (mean of its repeats)."""
    if not records.has_workload(function):
        return None
    best = records.get_top_k(records.commit_workload(function), 1)
    if not best or not best[0].run_secs:
        return None
    runs = [float(seconds) for seconds in best[0].run_secs]
    mean = sum(runs) / len(runs)
    return mean if mean > 0 else None  # a failed run records zeros


def task_seconds(records: Any, task: Any) -> float:
    """Seconds a tuning task's function costs per inference: its best measured run in the
    tuning ``records`` times its call count, or, before it has a record, its work at
    100 GFLOP/s. Measured time, not work, finds what to tune next: a small stem can take
    longer than convolutions with more work. Measurements: docs/design/tvm.md."""
    from tvm.s_tir.analysis import estimate_tir_flops

    function = task.dispatched[0]
    best = best_run_seconds(records, function)
    if best is None:
        best = float(estimate_tir_flops(function)) / 1e11
    return float(task.weight * best)


def task_headroom(records: Any, tasks: Sequence[Any]) -> dict[str, float]:
    """Seconds per inference each tuning task's function could still lose: its time
    (:func:`task_seconds`) minus its work at the best rate any measured function of the
    model reaches in ``records``; a function without a record keeps its whole estimate.
    Where the time goes is not where it can shrink. Measurements: docs/design/tvm.md."""
    from tvm.s_tir.analysis import estimate_tir_flops

    seconds = {task.task_name: task_seconds(records, task) for task in tasks}
    work = {task.task_name: task.weight * float(estimate_tir_flops(task.dispatched[0]))
            for task in tasks}
    measured = {task.task_name for task in tasks
                if best_run_seconds(records, task.dispatched[0]) is not None}
    rate = max((work[name] / seconds[name] for name in measured), default=0.0)
    return {name: seconds[name] - (work[name] / rate if name in measured else 0.0)
            for name in seconds}

