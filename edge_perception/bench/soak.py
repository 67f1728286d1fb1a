"""``edge-perception soak``: the container held at about 2x lane capacity for a long time.

The workload is the executor benchmark's (an urgent light task, sign tasks added by config
until both lanes carry ``load`` x what they can serve), fed by a short synthetic drive played
in a loop with live stamps. Everything runs as ``edge-perception launch`` would start it, in
child processes (one container per lane, and the player): this process only watches, as
``edge-perception monitor`` does. Variant adaptation is off, so the overload holds. Every
second the containers' resident memory, every lane's waiting jobs and the tasks' counters
(from /diagnostics) are sampled; the report says whether memory stayed flat, queues stayed
bounded and the highest-priority task missed anything.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from rclpy.context import Context

from edge_perception.bench.executor_comparison import build_workload
from edge_perception.core.config import PerceptionConfig
from edge_perception.core.launch_plan import plan_launch
from edge_perception.figures import pyplot, save
from edge_perception.tools.lane_processes import (
    FIXED_VARIANTS,
    ChildProcesses,
    Observer,
    off_lane_cores,
)

# The urgent task's deadline over its profiled time plus one blocking stage (the executor
# benchmark's URGENT_MARGIN is 2.0). Its lane's own CPU time per step in a 150 s soak at 2x ran
# p50 11.6, p99 20.8, max 26.5 ms (wall time followed CPU time, so not the GIL): the other
# lane's work slows the same computation up to 2.3x, and with 2.0 the analysis refused the
# task at the end of two of three 10-minute soaks. Sign tasks are added until that margin.
URGENT_MARGIN = 2.5
SIGN_TASKS = 20


@dataclass(frozen=True)
class SoakSample:
    elapsed_s: float
    rss_mb: float
    queued: int  # jobs waiting to start, over all lanes
    jobs: int  # released so far, all tasks
    urgent_jobs: int  # released jobs of the highest-priority task
    urgent_misses: int  # its deadline misses


@dataclass(frozen=True)
class SoakResult:
    load: dict[str, float]
    urgent_task: str
    samples: list[SoakSample]
    max_queue_bound: int  # what the lanes may hold at most by construction
    crashed: str | None
    urgent_bound_ms: float | None = None  # its response-time bound by analysis, at the end
    urgent_deadline_ms: float | None = None
    urgent_response_ms: tuple[float, float] | None = None  # p50, p99 over its recent jobs

    @property
    def failure(self) -> str | None:
        """Why the soak failed (a container crashed, or no sample came), None if it ran."""
        return self.crashed or (None if self.samples else 'no samples')

    def rss_growth_mb_per_min(self) -> float:
        """Slope of RSS over the second half (the first half includes warm-up)."""
        half = self.samples[len(self.samples) // 2:]
        if len(half) < 2:
            return float('nan')
        slope = np.polyfit([s.elapsed_s for s in half], [s.rss_mb for s in half], 1)[0]
        return float(slope * 60)

    def urgent_misses_per_window(self, window_s: float = 600.0) -> list[int]:
        """The urgent task's misses in each ``window_s`` of the run (the issue's unit is ten
        minutes; a longer soak is several such runs back to back)."""
        cumulative: dict[int, int] = {}  # window index -> misses counted by its last sample
        for sample in self.samples:
            # (k-1)w < t <= kw is window k-1: the last sample, at the full duration, closes the
            # last window instead of opening an empty one. Samples come once a second and a
            # little late (600.02 s in a 600 s soak): whole seconds place them.
            second = round(sample.elapsed_s)
            cumulative[max(0, math.ceil(second / window_s) - 1)] = sample.urgent_misses
        counts, before = [], 0
        for index in range(max(cumulative, default=-1) + 1):
            total = cumulative.get(index, before)
            counts.append(total - before)
            before = total
        return counts


def run_soak(base: PerceptionConfig, scratch: Path, *, seconds: float, load: float = 2.0,
             process_per_lane: bool = True,
             progress: Callable[[SoakSample], None] = lambda sample: None) -> SoakResult:
    workload = build_workload(base, scratch, load=load, sign_tasks=SIGN_TASKS, frames=40,
                              urgent_margin=URGENT_MARGIN, process_per_lane=process_per_lane)
    containers = plan_launch(workload.config.source).containers
    urgent = workload.urgent_task
    context = Context()
    rclpy.init(context=context)
    observer = Observer(context, 'soak_observer')
    crashed = None
    samples: list[SoakSample] = []
    last = None
    try:
        with off_lane_cores(workload.config.executor_cpus), \
                ChildProcesses(log_dir=scratch) as children:
            children.start_containers(containers, parameters=FIXED_VARIANTS)
            observer.wait_for_lanes((lane.name for lane in workload.config.lanes), children)
            children.start('player', player_command(workload.bag))
            # The player started and was discovered.
            observer.wait_until(lambda: getattr(observer.task(urgent), 'jobs', 0) > 0,
                                children, what=f'no frame reached {urgent}', timeout_s=60.0)
            start = time.monotonic()
            next_sample = start
            while time.monotonic() - start < seconds:
                observer.spin()
                if time.monotonic() >= next_sample:
                    children.check()
                    next_sample += 1.0
                    snapshot = observer.board.snapshot()  # every container's latest report
                    last = observer.task(urgent) or last
                    sample = SoakSample(
                        elapsed_s=time.monotonic() - start,
                        rss_mb=children.rss_mb(spec.name for spec in containers),
                        queued=sum(lane.queued for lane in snapshot.lanes),
                        jobs=sum(task.jobs for task in snapshot.tasks),
                        urgent_jobs=last.jobs if last else 0,
                        urgent_misses=last.misses if last else 0)
                    samples.append(sample)
                    progress(sample)
    except Exception as err:  # the soak reports a crash instead of hiding it in a trace
        crashed = f'{type(err).__name__}: {err}'
    finally:
        observer.destroy()
        rclpy.try_shutdown(context=context)
    # A lane holds one waiting job per task (newest frame wins).
    return SoakResult(workload.utilisation, urgent, samples, len(workload.config.tasks), crashed,
                      None if last is None or math.isnan(last.rta_ms) else last.rta_ms,
                      None if last is None else last.deadline_ms,
                      None if last is None else (last.p50_ms, last.p99_ms))


def player_command(bag: Path) -> list[str]:
    """``edge-perception replay BAG --loop --restamp``, run as a child process as a camera
    driver would run: a player thread in a container's process parsed the bag's metadata on
    every loop, and collecting that garbage (13-16 ms) held the GIL the lanes wait for."""
    return [sys.executable, '-m', 'edge_perception.cli', 'replay', str(bag), '--loop',
            '--restamp']


def format_result(result: SoakResult) -> str:
    samples = result.samples
    if result.failure is not None:
        return f'soak FAILED: {result.failure}'
    load = ', '.join(f'{lane} {u:.2f}x' for lane, u in sorted(result.load.items()))
    rss = [s.rss_mb for s in samples]
    return '\n'.join([
        f'soak: {samples[-1].elapsed_s:.0f} s at lane load {load}; '
        f'{samples[-1].jobs} jobs released',
        f'RSS: start {rss[0]:.0f} MB, end {rss[-1]:.0f} MB, max {max(rss):.0f} MB; '
        f'second-half slope {result.rss_growth_mb_per_min():+.2f} MB/min',
        f'jobs waiting over all lanes: max {max(s.queued for s in samples)} '
        f'(bound by construction {result.max_queue_bound})',
        f'highest-priority task {result.urgent_task}: {samples[-1].urgent_misses} deadline '
        f'misses in {samples[-1].urgent_jobs} jobs; {_analysis(result)}',
        'its misses per 10 minutes: ' + ', '.join(map(str, result.urgent_misses_per_window())),
    ])


def _analysis(result: SoakResult) -> str:
    """The urgent task's verdict by response-time analysis with the WCETs measured in the
    soak (its deadline is met by construction only if this bound is)."""
    if result.urgent_bound_ms is None or result.urgent_deadline_ms is None:
        # /diagnostics writes an unbounded response (no fixed point within the deadline)
        # as n/a, as it does before the first completed job.
        return 'no response-time bound (no completed job yet, or none within the deadline)'
    verdict = 'schedulable' if result.urgent_bound_ms <= result.urgent_deadline_ms else (
        'NOT schedulable')
    response = '' if result.urgent_response_ms is None else (
        'response p50 {:.1f}, p99 {:.1f} ms; '.format(*result.urgent_response_ms))
    return (f'{response}{verdict} by analysis (response bound {result.urgent_bound_ms:.1f} ms, '
            f'deadline {result.urgent_deadline_ms:.1f} ms)')


def plot(result: SoakResult, path: Path) -> None:
    plt = pyplot()
    times = [s.elapsed_s for s in result.samples]
    figure, (memory, queues) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
    memory.plot(times, [s.rss_mb for s in result.samples])
    memory.set_ylabel('RSS, all containers (MB)')
    memory.set_ylim(bottom=0)
    last = result.samples[-1]
    load = ', '.join(f'{lane} {u:.1f}x' for lane, u in sorted(result.load.items()))
    memory.set_title(f'Soak at lane load {load}: RSS slope '
                     f'{result.rss_growth_mb_per_min():+.1f} MB/min (2nd half)\n'
                     f'{result.urgent_task} (highest priority) missed '
                     f'{last.urgent_misses} of {last.urgent_jobs} deadlines', fontsize=9)
    queues.plot(times, [s.queued for s in result.samples], label='waiting jobs (all lanes)')
    queues.axhline(result.max_queue_bound, color='red', linestyle=':', label='bound')
    queues.set_ylabel('jobs')
    queues.set_xlabel('time (s)')
    queues.legend(fontsize=8)
    save(figure, path)
