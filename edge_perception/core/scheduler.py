"""The deadline scheduler: tasks, deadline-monotonic priorities, lanes and their statistics.

It knows nothing of ROS: the rclpy executor releases jobs into it, lanes run them, and
diagnostics read :meth:`DeadlineScheduler.task_report` and :meth:`~DeadlineScheduler.lane_report`.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Mapping

from edge_perception.core.config import LaneConfig, PerceptionConfig, TaskConfig
from edge_perception.core.fault_guard import FaultGuard
from edge_perception.core.health import (
    OK,
    InputHealth,
    LaneHealth,
    NodeCounts,
    TaskHealth,
    task_level,
)
from edge_perception.core.input_watchdog import INPUT_LEVELS, InputVerdict
from edge_perception.core.jobs import Clock, Job, JobOutcome, MonotonicClock, Stages
from edge_perception.core.lanes import Lane, LaneWorker
from edge_perception.core.release_slots import ReleaseSlots
from edge_perception.core.scheduling import (
    ResponseBound,
    TaskTiming,
    deadline_monotonic,
    padded,
    response_times,
)
from edge_perception.core.spinning_load import SPINNING_PREFIX, SpinningLoad
from edge_perception.core.task_stats import TaskStats
from edge_perception.core.thread_setup import (
    configure_current_thread,
    pin_process_threads,
    restore_threads,
    set_gil_switch_interval,
)

# An execution longer than this multiple of the typical one is reported as an overrun.
OVERRUN_FACTOR = 2.0
_log = logging.getLogger(__name__)


class DeadlineScheduler:
    """Runs every task's jobs on its lane in deadline-monotonic priority order."""

    def __init__(self, config: PerceptionConfig, *, clock: Clock | None = None,
                 devices: dict[str, str] | None = None, queue_limit: int = 1,
                 on_outcome: Callable[[JobOutcome], None] | None = None) -> None:
        self.config = config
        self.clock = clock or MonotonicClock()
        self.tasks: dict[str, TaskConfig] = {t.name: t for t in config.tasks}
        self.priorities = deadline_monotonic(
            TaskTiming(t.name, t.lane, t.period_ns, t.deadline_ns, (1,)) for t in config.tasks)
        self.stats = {name: TaskStats() for name in self.tasks}
        self.spinning = SpinningLoad()  # the rclpy executor records its thread's work here
        self.guards = {name: FaultGuard() for name in self.tasks}
        self.devices = devices or {lane.name: lane.device for lane in config.lanes}
        self._lane_configs: dict[str, LaneConfig] = {lane.name: lane for lane in config.lanes}
        self._on_outcome = on_outcome
        self._stats_lock = threading.Lock()
        self._slots = {name: ReleaseSlots(task.period_ns) for name, task in self.tasks.items()}
        self.lanes = {
            lane.name: Lane(name=lane.name, clock=self.clock, on_outcome=self._record,
                            expected_exec_ns=self.expected_exec_ns, queue_limit=queue_limit,
                            max_batch=lane.max_batch, hand_over=self._hand_over,
                            spinning_cpu_ns=self.spinning.cpu_ns)
            for lane in config.lanes
        }
        self._workers: list[LaneWorker] = []
        self._pinned: dict[int, set[int]] = {}
        self._previous_switch_ms: float | None = None
        self._busy_mark = {name: (0, self.clock.now_ns()) for name in self.lanes}
        self.setup_log: list[str] = []

    def expected_exec_ns(self, task: str) -> int:
        with self._stats_lock:
            return self.stats[task].expected_exec_ns()

    def opens(self, task: str, stamp_ns: int | None = None) -> bool:
        """Whether a frame now (stamped ``stamp_ns``) would release a job of ``task``; a
        frame that would not is counted (skipped inside the period, refused while isolated)
        and need not even be decoded."""
        now = self.clock.now_ns()
        with self._stats_lock:
            if self.guards[task].isolated(now):
                self.stats[task].refused += 1
                return False
            if not self._slots[task].opens(now, stamp_ns):
                self.stats[task].skipped += 1
                return False
            return True

    def supersede(self, task: str) -> bool:
        """A frame replaced by a newer one taken with it: counted as skipped, never released
        (False, as :meth:`opens` answers)."""
        with self._stats_lock:
            self.stats[task].skipped += 1
        return False

    def release(self, task: str, stages: Stages, *, stamp_ns: int | None = None,
                input_delay_ns: int | None = None, transport_ns: int | None = None) -> Job | None:
        """Release a job of ``task`` now; None when it falls inside the current period.

        The period is judged by ``stamp_ns`` (when the frame was taken) where the message
        has one, so that transport jitter cannot make a frame of the next period look early;
        by the arrival time otherwise, or when the stamp went backwards (a restarted source).
        Where the stamp is on this machine's clock, ``input_delay_ns`` (the frame's age now)
        moves the deadline back to when the camera took the frame, as a user counts it, and
        ``transport_ns`` (its age when this process received it) is the release jitter the
        analysis adds; from receipt on, the wait for the spinning thread is the analysis'
        own blocking and interference.
        """
        now = self.clock.now_ns()
        config = self.tasks[task]
        with self._stats_lock:
            if self.guards[task].isolated(now):
                self.stats[task].refused += 1
                return None
            if not self._slots[task].admit(now, stamp_ns):
                self.stats[task].skipped += 1
                return None
            self.stats[task].released += 1
            if transport_ns is not None:
                self.stats[task].record_transport(max(transport_ns, 0))
        job = Job(task=task, priority=self.priorities[task], release_ns=now,
                  deadline_ns=now - max(input_delay_ns or 0, 0) + config.deadline_ns,
                  stages=stages)
        self.lanes[config.lane].submit(job)
        return job

    def _hand_over(self, lane: str, job: Job) -> None:
        self.lanes[lane].accept(job)

    def _record(self, outcome: JobOutcome) -> None:
        with self._stats_lock:
            stats = self.stats[outcome.task]
            typical = stats.typical_exec_ns()
            overran = stats.record(outcome,
                                   budget_ns=int(typical * OVERRUN_FACTOR) if typical else None)
            isolated = self.guards[outcome.task].record(
                failed=outcome.dropped == 'failed', overran=overran, now_ns=outcome.end_ns)
        if isolated is not None:
            _log.error('task %s %s', outcome.task, isolated)
        if self._on_outcome is not None:
            self._on_outcome(outcome)

    def start(self) -> None:
        """Start one worker thread per lane (with its OS priority and CPU set), after moving
        every other thread of the process to ``executor_cpus`` when configured, and with the
        configured GIL switch interval (the previous one comes back at :meth:`stop`)."""
        everywhere = tuple(sorted(os.sched_getaffinity(0)))
        self._previous_switch_ms = set_gil_switch_interval(self.config.gil_switch_interval_ms)
        self.setup_log.append(f'GIL switch interval {self.config.gil_switch_interval_ms} ms')
        if self.config.executor_cpus:
            self._pinned, lines = pin_process_threads(self.config.executor_cpus)
            self.setup_log.extend(lines)
        for name, lane in self.lanes.items():
            settings = self._lane_configs[name]
            # A lane without its own CPUs may run anywhere, not only where the executor runs.
            cpus = settings.cpus or (everywhere if self.config.executor_cpus else ())

            def setup(settings: LaneConfig = settings, cpus: tuple[int, ...] = cpus) -> None:
                self.setup_log.extend(configure_current_thread(
                    lane=settings.name, rt_priority=settings.rt_priority, nice=settings.nice,
                    cpus=cpus))

            worker = LaneWorker(lane, setup=setup)
            worker.start()
            self._workers.append(worker)

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop every lane after its current stage; True when all threads exited."""
        stopped = all([worker.stop(timeout_s) for worker in self._workers])
        self._workers.clear()
        restore_threads(self._pinned)
        self._pinned = {}
        if self._previous_switch_ms is not None:
            set_gil_switch_interval(self._previous_switch_ms)
            self._previous_switch_ms = None
        return stopped

    def timing(self, task: str) -> TaskTiming | None:
        """The task's measured timing, stage maxima and transport padded by the configured
        WCET margin (None before any job completed)."""
        with self._stats_lock:
            stages = self.stats[task].stage_wcets_ns()
            delay = self.stats[task].transport_max_ns()
        if not stages:
            return None
        config = self.tasks[task]
        margin = self.config.wcet_margin
        return TaskTiming(task, config.lane, config.period_ns, config.deadline_ns,
                          padded(stages, margin), jitter_ns=padded((delay or 0,), margin)[0])

    def analysis(self) -> dict[str, ResponseBound]:
        """Response-time analysis with measured WCETs, over the tasks measured so far, with
        the spinning thread's measured work above every lane's tasks."""
        timings = [t for t in (self.timing(name) for name in self.tasks) if t is not None]
        return response_times(timings, self.priorities, interference=self.spinning.interference(
            list(self.lanes), self.config.wcet_margin))

    def take_windows(self) -> dict[str, tuple[int, int]]:
        with self._stats_lock:
            return {name: stats.take_window() for name, stats in self.stats.items()}

    def typical_exec_ns(self) -> dict[str, int]:
        """Each task's median execution time over recent jobs (0 before the first)."""
        with self._stats_lock:
            return {name: stats.typical_exec_ns() for name, stats in self.stats.items()}

    def forget_timing(self, task: str) -> None:
        with self._stats_lock:
            self.stats[task].forget_timing()

    def lane_report(self) -> list[LaneHealth]:
        """Per lane: share of wall time spent running stages since the previous report."""
        reports = []
        now = self.clock.now_ns()
        for name, lane in self.lanes.items():
            busy, since = self._busy_mark[name]
            elapsed = max(now - since, 1)
            self._busy_mark[name] = (lane.busy_ns, now)
            configured = self._lane_configs[name].device
            reports.append(LaneHealth(
                lane=name, device=self.devices[name], fallback=self.devices[name] != configured,
                utilisation=min(1.0, (lane.busy_ns - busy) / elapsed), queued=lane.queued(),
                spinning={t.name.removeprefix(SPINNING_PREFIX): (
                    f'{t.wcet_ns / 1e6:.2f} ms every {t.period_ns / 1e6:.1f} ms, '
                    f'jitter {t.jitter_ns / 1e6:.1f} ms')
                    for t in self.spinning.interference([name], 1.0)}))
        return reports

    def task_report(self, *, variants: Mapping[str, str] | None = None,
                    failures: Mapping[str, str] | None = None,
                    inputs: Mapping[str, InputVerdict] | None = None,
                    nodes: Mapping[str, NodeCounts] | None = None,
                    engines: Mapping[str, str] | None = None,
                    untuned: Mapping[str, str] | None = None,
                    now_ns: int = 0) -> list[TaskHealth]:
        """Each task's health from its statistics and the response-time analysis, with
        what the container knows besides: the variant each runs (``variants``), why a task
        could not start (``failures``), whether its camera sends (``inputs``, whose
        ``last_frame_ns`` are on the clock of ``now_ns``), its node's counts, the engine
        of its models and, where one runs untuned on onnxruntime, the command that tunes it."""
        variants, failures = variants or {}, failures or {}
        engines, untuned = engines or {}, untuned or {}
        inputs, nodes = inputs or {}, nodes or {}
        bounds = self.analysis()
        now = self.clock.now_ns()
        return [self._task_health(name, variant=variants.get(name, task.variant),
                                  failure=failures.get(name), camera=inputs.get(name),
                                  node=nodes.get(name), bound=bounds.get(name),
                                  now=now, camera_now_ns=now_ns, engine=engines.get(name, ''),
                                  untuned=untuned.get(name))
                for name, task in self.tasks.items()]

    def _task_health(self, name: str, *, variant: str, failure: str | None,
                     camera: InputVerdict | None, node: NodeCounts | None,
                     bound: ResponseBound | None, now: int, camera_now_ns: int,
                     engine: str = '', untuned: str | None = None) -> TaskHealth:
        task, stats, guard = self.tasks[name], self.stats[name], self.guards[name]
        times = stats.response_times()
        isolated = None if not guard.isolated(now) else (
            f'isolated after repeated {guard.last_reason}: frames refused for '
            f'{(guard.isolated_until_ns - now) / 1e9:.1f} s more')
        schedulable = None if bound is None else bound.schedulable
        level, message = task_level(
            failure=failure, isolated=isolated,
            input_level=INPUT_LEVELS[camera.level] if camera else OK,
            input_message=camera.message if camera else '',
            recent_miss_ratio=stats.recent_miss_ratio, schedulable=schedulable, untuned=untuned)
        return TaskHealth(
            task=name, level=level, message=message, lane=task.lane, variant=variant,
            period_ms=task.period_ms, deadline_ms=task.deadline_ms,
            priority=self.priorities[name], jobs=stats.released, completed=stats.completed,
            skipped_frames=stats.skipped, misses=stats.misses, late=stats.late,
            drops=dict(stats.drops), overruns=stats.overruns, isolations=guard.isolations,
            refused_frames=stats.refused, miss_ratio=stats.miss_ratio,
            recent_miss_ratio=stats.recent_miss_ratio, response_p50_ms=times.p50_ms,
            response_p99_ms=times.p99_ms, response_max_ms=times.max_ms,
            wcet_estimate_ms=stats.wcet_estimate_ns() / 1e6,
            wcet_margin=self.config.wcet_margin,
            transport_max_ms=math.nan if (transport := stats.transport_max_ns()) is None
            else transport / 1e6,
            rta_response_ms=bound.response_ns / 1e6 if bound else math.nan,
            rta_wcet_ms=bound.wcet_ns / 1e6 if bound else math.nan,
            rta_blocking_ms=bound.blocking_ns / 1e6 if bound else math.nan,
            rta_interference_ms=bound.interference_ns / 1e6 if bound else math.nan,
            rta_jitter_ms=bound.jitter_ns / 1e6 if bound else math.nan,
            schedulable=schedulable,
            input=None if camera is None else InputHealth(
                camera.level, None if camera.last_frame_ns is None
                else (camera_now_ns - camera.last_frame_ns) / 1e9),
            node=node, engine=engine)
