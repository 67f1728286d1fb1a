"""/diagnostics for rqt_runtime_monitor and rqt_robot_monitor: one status per task and lane.

Conventions of diagnostic_msgs: a DiagnosticArray with a header stamp, statuses named
``<component>: <item>``, a level byte (OK/WARN/ERROR), a one-line message and string
key/values. Levels come from each task's recent miss ratio and the response-time analysis.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

from edge_perception.core.input_watchdog import ERROR, WARN, InputVerdict
from edge_perception.core.scheduler import DeadlineScheduler
from edge_perception.core.scheduling import ResponseBound

PREFIX = 'edge_perception'
WARN_MISS_RATIO = 0.05
ERROR_MISS_RATIO = 0.20


def _fmt(value: float) -> str:
    return 'n/a' if math.isnan(value) or math.isinf(value) else f'{value:.3f}'


def diagnostics_message(scheduler: DeadlineScheduler, *, header: Header,
                        variants: Mapping[str, str],
                        task_extras: Callable[[str], dict[str, str]],
                        failures: Mapping[str, str],
                        inputs: Mapping[str, InputVerdict] | None = None,
                        now_ns: int = 0) -> DiagnosticArray:
    """Build the array from the scheduler's current statistics.

    ``task_extras(task)`` adds node-side values (bad frames per reason, ...); ``failures``
    maps tasks that could not start to the reason (reported as ERROR); ``inputs`` says per
    task whether its camera sends (a silent one is WARN, then ERROR: a task without frames
    misses no deadline), ``now_ns`` on the clock of their ``last_frame_ns``.
    """
    inputs = inputs or {}
    bounds: dict[str, ResponseBound] = scheduler.analysis()
    statuses = []
    for name, task in scheduler.tasks.items():
        stats = scheduler.stats[name]
        times = stats.response_times()
        ratio = stats.recent_miss_ratio
        bound = bounds.get(name)
        guard = scheduler.guards[name]
        camera = inputs.get(name)
        if name in failures:
            level, message = DiagnosticStatus.ERROR, f'disabled: {failures[name]}'
        elif guard.isolated(scheduler.clock.now_ns()):
            level, message = DiagnosticStatus.ERROR, (
                f'isolated after repeated {guard.last_reason}: frames refused for '
                f'{(guard.isolated_until_ns - scheduler.clock.now_ns()) / 1e9:.1f} s more')
        elif camera is not None and camera.level == ERROR:
            level, message = DiagnosticStatus.ERROR, camera.message
        elif ratio >= ERROR_MISS_RATIO:
            level, message = DiagnosticStatus.ERROR, f'missing deadlines ({ratio:.0%} recent)'
        elif ratio >= WARN_MISS_RATIO:
            level, message = DiagnosticStatus.WARN, f'missing deadlines ({ratio:.0%} recent)'
        elif camera is not None and camera.level == WARN:
            level, message = DiagnosticStatus.WARN, camera.message
        elif bound is not None and not bound.schedulable:
            level, message = DiagnosticStatus.WARN, 'not schedulable by analysis'
        else:
            level, message = DiagnosticStatus.OK, 'meeting deadlines'
        values = {
            'period_ms': f'{task.period_ms:g}', 'deadline_ms': f'{task.deadline_ms:g}',
            'lane': task.lane, 'priority': str(scheduler.priorities[name]),
            'variant': variants.get(name, task.variant),
            'jobs': str(stats.released), 'completed': str(stats.completed),
            'skipped_frames': str(stats.skipped), 'misses': str(stats.misses),
            'late': str(stats.late), 'drops': str(sum(stats.drops.values())),
            **{f'drops_{reason}': str(count) for reason, count in sorted(stats.drops.items())},
            'overruns': str(stats.overruns), 'isolations': str(guard.isolations),
            'refused_frames': str(stats.refused),
            'miss_ratio': _fmt(stats.miss_ratio), 'recent_miss_ratio': _fmt(ratio),
            'response_p50_ms': _fmt(times.p50_ms), 'response_p99_ms': _fmt(times.p99_ms),
            'response_max_ms': _fmt(times.max_ms),
            'wcet_estimate_ms': _fmt(stats.wcet_estimate_ns() / 1e6),
            'wcet_margin': f'{scheduler.config.wcet_margin:g}',
            'rta_response_ms': _fmt(bound.response_ns / 1e6) if bound else 'n/a',
            'schedulable': ('unknown' if bound is None else str(bound.schedulable).lower()),
            **({} if camera is None else {
                'input': camera.level,
                'last_frame_age_s': ('never' if camera.last_frame_ns is None
                                     else f'{(now_ns - camera.last_frame_ns) / 1e9:.1f}')}),
            **task_extras(name),
        }
        statuses.append(DiagnosticStatus(
            level=level, name=f'{PREFIX}: {name}', message=message, hardware_id=task.lane,
            values=[KeyValue(key=k, value=v) for k, v in values.items()]))
    for lane in scheduler.lane_report():
        message = f'{lane.device}' + (' (CPU fallback: no CUDA device)' if lane.fallback else '')
        values = {'utilisation': _fmt(lane.utilisation), 'device': lane.device,
                  'fallback': str(lane.fallback).lower(),
                  **{f'queued_{task}': str(n) for task, n in sorted(lane.queued.items())}}
        statuses.append(DiagnosticStatus(
            level=DiagnosticStatus.WARN if lane.fallback else DiagnosticStatus.OK,
            name=f'{PREFIX}: lane {lane.name}', message=message, hardware_id=lane.name,
            values=[KeyValue(key=k, value=v) for k, v in values.items()]))
    return DiagnosticArray(header=header, status=statuses)
