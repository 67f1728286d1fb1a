"""A lane: one worker that runs jobs stage by stage in priority order.

The lane is the unit of mutual exclusion (one device, one inference at a time). Its ready
queue is ordered by (priority, release, job id). Between two stages it picks again, so a
higher-priority job waits at most one stage of a lower-priority one. Overload policy:

* a task keeps at most ``queue_limit`` jobs waiting to start; a newer release displaces the
  oldest waiting one (newest frame wins) instead of letting the queue grow;
* a job that would start when it can no longer meet its deadline (now + the task's expected
  execution time > deadline) is dropped as stale; a started job whose deadline has passed
  is aborted between stages; both count as deadline misses (the estimate cannot starve a
  task: after a few stale drops in a row one job runs and renews it, see TaskStats);
* a stage that raises ends its job as 'failed'; the lane carries on;
* packing (``max_batch`` > 1): when the job to run next waits for a request that other ready
  jobs wait for too (same model, variant and device), they run as one batch if its measured
  latency meets every member's deadline;
* pipelining: a job whose next request names another lane moves to that lane's queue (its
  priority unchanged), so stage k of one frame overlaps stage k+1 of the previous one.

:meth:`Lane.run_next` does one step synchronously (unit tests drive it with a fake clock);
:class:`LaneWorker` runs it on a thread.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from edge_perception.core.batching import packable
from edge_perception.core.jobs import Clock, Job, JobOutcome, OutcomeListener

_log = logging.getLogger(__name__)


class Lane:
    """Ready queue + dispatch rule of one lane (no thread of its own; see LaneWorker)."""

    def __init__(self, *, name: str, clock: Clock, on_outcome: OutcomeListener,
                 expected_exec_ns: Callable[[str], int], queue_limit: int = 1,
                 max_batch: int = 1,
                 hand_over: Callable[[str, Job], None] | None = None,
                 spinning_cpu_ns: Callable[[], int] = lambda: 0,
                 thread_cpu_ns: Callable[[], int] = time.thread_time_ns) -> None:
        if queue_limit < 1:
            raise ValueError(f'lane {name}: queue_limit must be >= 1, got {queue_limit}')
        if max_batch < 1:
            raise ValueError(f'lane {name}: max_batch must be >= 1, got {max_batch}')
        self.name = name
        self._clock = clock
        self._on_outcome = on_outcome
        self._expected_exec_ns = expected_exec_ns
        self._queue_limit = queue_limit
        self._max_batch = max_batch
        self._hand_over = hand_over
        self._spinning_cpu_ns = spinning_cpu_ns
        self._thread_cpu_ns = thread_cpu_ns
        self._ready: list[tuple[tuple[int, int, int], Job]] = []
        self._waiting: Counter[str] = Counter()  # not-yet-started jobs per task
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        self.busy_ns = 0
        self.batched_calls = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._ready)

    def queued(self) -> dict[str, int]:
        with self._lock:
            return dict(self._waiting)

    def submit(self, job: Job) -> None:
        """Prepare a released job (its code up to the first yield, in the caller's thread) and
        queue it; may displace the task's oldest waiting job."""
        state = self._step(job)
        if state != 'more':
            self._finish(job, dropped=None if state == 'done' else 'failed')
            return
        displaced = None
        with self._lock:
            if self._waiting[job.task] >= self._queue_limit:
                waiting = [entry for entry in self._ready
                           if entry[1].task == job.task and not entry[1].started]
                oldest = min(waiting, key=lambda entry: entry[1].release_ns)
                self._ready.remove(oldest)
                heapq.heapify(self._ready)
                self._waiting[job.task] -= 1
                displaced = oldest[1]
            heapq.heappush(self._ready, (job.sort_key(), job))
            self._waiting[job.task] += 1
            self.changed.notify()
        if displaced is not None:
            self._finish(displaced, dropped='displaced')

    def run_next(self) -> bool:
        """Run one step of the most urgent job (with any jobs packed into its batch); False
        when nothing was ready."""
        with self._lock:
            if not self._ready:
                return False
            _, job = heapq.heappop(self._ready)
            if not job.started:
                self._waiting[job.task] -= 1
        now = self._clock.now_ns()
        if not job.started and now + self._expected_exec_ns(job.task) > job.deadline_ns:
            self._finish(job, dropped='stale')
            return True
        if job.started and now > job.deadline_ns:
            self._finish(job, dropped='aborted')
            return True
        members = [job, *self._pack(job, now)]
        own_before, spinning_before = self._thread_cpu_ns(), self._spinning_cpu_ns()
        states = self._run_step(members)
        end = self._clock.now_ns()
        took = self._own_time(end - now, self._thread_cpu_ns() - own_before,
                              self._spinning_cpu_ns() - spinning_before)
        self.busy_ns += took
        for member, state in zip(members, states, strict=True):
            member.started = True
            member.exec_ns += took  # a shared batch counts fully for every member
            member.stage_ns.append(took)
            member.stages_run += 1
            if state == 'more':
                self._requeue(member)
            else:
                self._finish(member, dropped=None if state == 'done' else 'failed')
        return True

    @staticmethod
    def _own_time(wall_ns: int, thread_cpu_ns: int, spinning_cpu_ns: int) -> int:
        """A stage's time without the spinning thread's work that ran while this lane waited
        (its core, or the GIL): the analysis counts that work as interference above every
        task, and in the stage's time too it counted twice (the diagnostics timer's 3-5 ms
        inside an urgent stage's maximum). Work that ran in parallel, while the lane's thread
        ran too, is not subtracted."""
        waited = max(0, wall_ns - thread_cpu_ns)
        return wall_ns - min(waited, max(0, spinning_cpu_ns))

    def _requeue(self, job: Job) -> None:
        target = None if job.pending is None else job.pending.lane
        if target is not None and target != self.name and self._hand_over is not None:
            self._hand_over(target, job)
            return
        self.accept(job)

    def accept(self, job: Job) -> None:
        """Queue a started job (one handed over by another lane, or this lane's own)."""
        with self._lock:
            heapq.heappush(self._ready, (job.sort_key(), job))
            self.changed.notify()

    def _run_step(self, members: list[Job]) -> list[str]:
        """The leader's pending request (with the members' packed in), then each member's
        code up to its next yield."""
        leader = members[0]
        if leader.pending is not None:
            try:
                outputs = leader.pending.run_together(
                    [m.pending for m in members[1:] if m.pending is not None])
            except Exception:
                _log.exception('lane %s: inference for %s failed', self.name,
                               ', '.join(m.task for m in members))
                return ['failed'] * len(members)
            self.batched_calls += len(members) > 1
            for member, output in zip(members, outputs, strict=True):
                member.pending, member.result = None, output
        return [self._step(member) for member in members]

    def _step(self, job: Job) -> str:
        """Run the job's code up to its next yield: 'more', 'done' or 'failed'."""
        try:
            job.pending = job.stages.send(job.result)
        except StopIteration:
            return 'done'
        except Exception:
            _log.exception('lane %s: task %s job %d failed', self.name, job.task, job.job_id)
            return 'failed'
        job.result = None
        return 'more'

    def _pack(self, job: Job, now: int) -> list[Job]:
        """Ready jobs whose pending request can share ``job``'s call (RT-mDL packing)."""
        request = job.pending
        if request is None or self._max_batch == 1:
            return []
        with self._lock:
            same = sorted((entry[1] for entry in self._ready
                           if entry[1].pending is not None
                           and entry[1].pending.key == request.key),
                          key=lambda j: j.deadline_ns)[: self._max_batch - 1]
            if not same:
                return []
            latencies = {n: latency for n in range(2, len(same) + 2)
                         if (latency := request.batch_latency_ns(n)) is not None}
            count = packable(latencies, now_ns=now,
                             deadlines_ns=[job.deadline_ns, *(j.deadline_ns for j in same)])
            chosen = same[: count - 1]
            if chosen:
                self._ready = [entry for entry in self._ready if entry[1] not in chosen]
                heapq.heapify(self._ready)
                for member in chosen:
                    if not member.started:
                        self._waiting[member.task] -= 1
            return chosen

    def _finish(self, job: Job, *, dropped: str | None) -> None:
        self._on_outcome(JobOutcome(
            task=job.task, job_id=job.job_id, release_ns=job.release_ns,
            deadline_ns=job.deadline_ns, end_ns=self._clock.now_ns(), exec_ns=job.exec_ns,
            stage_ns=tuple(job.stage_ns), dropped=dropped))

    def drain(self) -> None:
        """Drop every queued job (shutdown): nothing waits forever."""
        with self._lock:
            jobs = [job for _, job in self._ready]
            self._ready.clear()
            self._waiting.clear()
        for job in jobs:
            self._finish(job, dropped='aborted')


class LaneWorker:
    """Runs a :class:`Lane` on its own thread until :meth:`stop`."""

    def __init__(self, lane: Lane, *, setup: Callable[[], None] | None = None) -> None:
        self.lane = lane
        self._setup = setup
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=f'lane-{lane.name}',
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        if self._setup is not None:
            self._setup()
        while True:
            with self.lane.changed:
                while not self._stopping and not self.lane._ready:
                    self.lane.changed.wait()
                if self._stopping:
                    break
            self.lane.run_next()
        self.lane.drain()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Ask the thread to finish its current stage and exit; True when it did."""
        with self.lane.changed:
            self._stopping = True
            self.lane.changed.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        return not self._thread.is_alive()
