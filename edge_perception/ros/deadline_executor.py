"""DeadlineExecutor: rclpy waits for messages, our scheduler decides what runs when.

A custom executor implements rclpy's spin contract; this one waits and takes messages exactly
like rclpy's SingleThreadedExecutor. Subscriptions whose callback group was mapped to tasks with
:meth:`DeadlineExecutor.assign` do not run their callback here: the executor asks each task's
node for the message's staged work and releases it as a job into the
:class:`~edge_perception.core.scheduler.DeadlineScheduler`, whose lane threads run jobs in
deadline-monotonic priority order, stage by stage. One subscription may feed several tasks
(the container subscribes once per camera topic). Every other callback (timers, parameter
services, diagnostics) runs in the spinning thread as usual. The CPU time of what the
spinning thread runs goes to :attr:`DeadlineScheduler.spinning` (CPU, not wall time: on a
lane's core the wall time of a callback includes the lane's own work): it delays the lanes,
and the analysis counts it.
"""

from __future__ import annotations

import contextlib
import functools
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from itertools import islice
from typing import Any

from rclpy.callback_groups import CallbackGroup
from rclpy.context import Context
from rclpy.exceptions import InvalidHandle
from rclpy.executors import (
    ConditionReachedException,
    Executor,
    ExternalShutdownException,
    ShutdownException,
    TimeoutException,
    TimeoutObject,
)
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.service import Service
from rclpy.subscription import Subscription
from rclpy.task import Future
from rclpy.timer import Timer

from edge_perception.core.jobs import Stages
from edge_perception.core.scheduler import DeadlineScheduler
from edge_perception.ros.image_conversion import ImageDecodeError
from edge_perception.ros.taken_message import TakenMessage

# stages_for(message, due): the message's staged work, or None; due() says whether it opens
# a period of the task (ask before deserialising: most frames of a fast camera do not).
StagesFor = Callable[[TakenMessage, Callable[[], bool]], Stages | None]

# A frame stamped further than this from the wall clock was stamped on another clock (a bag's
# recording time, a camera's own): its deadline counts from its arrival instead.
SAME_CLOCK_NS = 1_000_000_000
# Most frames taken at once (a reader's queue, plus what arrives while it is emptied).
MAX_BURST = 64


@dataclass(frozen=True)
class _Route:
    task: str
    stages_for: StagesFor


@dataclass(frozen=True)
class _Frame:
    """A taken camera message: its stamp (None: none, or unreadable), when DDS received it,
    and its age then where the stamp is on this machine's clock."""

    message: TakenMessage
    stamp_ns: int | None
    received_ns: int
    transport_ns: int | None


class DeadlineExecutor(Executor):
    """Spins nodes; releases the messages of assigned callback groups as prioritised jobs.

    :param scheduler: owns the lanes; started on the first spin, stopped by :meth:`shutdown`.
    """

    def __init__(self, scheduler: DeadlineScheduler, *, context: Context | None = None) -> None:
        super().__init__(context=context)
        self.scheduler = scheduler
        self._routes: dict[CallbackGroup, list[_Route]] = {}
        # get_nodes() runs before every wait: ranking the nodes anew each time cost ~60 us
        # of the spinning thread's ~0.8 ms per wait (18 nodes). Cleared when a route changes.
        self._urgency_of: weakref.WeakKeyDictionary[Node, tuple[int, str]] = (
            weakref.WeakKeyDictionary())
        self._started = False
        self._off_clock: set[str] = set()  # topics whose stamps are on another clock

    def assign(self, group: CallbackGroup, *, task: str, stages_for: StagesFor) -> None:
        """Route messages of subscriptions in ``group`` to ``task``'s lane; a group assigned
        to several tasks releases a job of each per message, most urgent first.

        ``stages_for(msg, due)`` runs in the spinning thread right after the message is taken
        (keep it cheap: validate, and decode only where ``due()``); it returns the job's
        stages, or None to skip the message.
        """
        if task not in self.scheduler.tasks:
            raise ValueError(f'unknown task {task!r} (known: {sorted(self.scheduler.tasks)})')
        routes = [*self._routes.get(group, []), _Route(task, stages_for)]
        self._routes[group] = sorted(routes, key=lambda r: self.scheduler.priorities[r.task])
        self._urgency_of.clear()

    def get_nodes(self) -> list[Node]:
        """The nodes, those of the most urgent tasks first.

        rclpy takes the ready messages of one wait node by node in this order (it keeps the
        nodes in a set, so in no particular order): frames that arrive together are released
        urgent first, instead of the urgent one waiting behind every other task's decoding.
        """
        return sorted(super().get_nodes(), key=self._urgency)

    def _urgency(self, node: Node) -> tuple[int, str]:
        if node not in self._urgency_of:
            ranks = [self.scheduler.priorities[route.task] for sub in node.subscriptions
                     for route in self._routes.get(sub.callback_group, [])]
            self._urgency_of[node] = (min(ranks, default=len(self.scheduler.priorities)),
                                      node.get_name())
        return self._urgency_of[node]

    # rclpy's hook that turns a ready subscription into the coroutine that handles its
    # message; overriding it keeps waiting, taking and callback-group bookkeeping in rclpy.
    def _take_subscription(
        self, sub: Subscription[Any]
    ) -> Callable[[], Coroutine[None, None, None]] | None:
        routes = self._routes.get(sub.callback_group)
        if routes is None:
            return super()._take_subscription(sub)
        cpu_before = time.thread_time_ns()
        try:
            with sub.handle:
                # Every frame waiting, not only the oldest: with a queue deeper than 1
                # (``inputs: depth``), frames queue up while a lane keeps the spinning thread
                # off its core, and the oldest one that opens a period can be several frames
                # stale (urgent p50 23 ms at a 240 Hz camera, 14 ms releasing the newest).
                taken = list(islice(iter(
                    lambda: sub.handle.take_message(sub.msg_type, sub.raw), None), MAX_BURST))
            topic = sub.topic_name  # now: a job's stage may shut everything down later
        except InvalidHandle:
            return None
        if not taken:
            return None
        frames = [self._frame(topic, sub, payload, info['received_timestamp'])
                  for payload, info in taken]
        take_cost = (time.thread_time_ns() - cpu_before) // len(frames)

        async def release() -> None:
            *older, newest = frames
            for frame in older:  # superseded by the newest: counted, never decoded
                self._handle(frame, routes, topic, take_cost, superseded=True)
            self._handle(newest, routes, topic, take_cost, superseded=False)

        return release

    def _frame(self, topic: str, sub: Subscription[Any], payload: Any,
               received_ns: int) -> _Frame:
        message = (TakenMessage(msg_type=sub.msg_type, raw=payload) if sub.raw
                   else TakenMessage.of(payload))
        try:
            stamp_ns: int | None = message.stamp_ns or None  # 0: the message has no stamp
        except ImageDecodeError:
            stamp_ns = None  # not even its stamp can be read: the task nodes count it
        received_ns = received_ns or time.time_ns()
        return _Frame(message, stamp_ns, received_ns,
                      self._camera_age(topic, stamp_ns, received_ns))

    def _handle(self, frame: _Frame, routes: list[_Route], topic: str, take_cost: int, *,
                superseded: bool) -> None:
        """Show ``frame`` to every task it feeds, most urgent first, and release the jobs of
        those whose period it opens (none when ``superseded``); its CPU time goes to the
        topic, a release's to the task's release."""
        start = time.thread_time_ns()
        releasing = 0
        try:
            for route in routes:
                before = time.thread_time_ns()
                due = (functools.partial(self.scheduler.supersede, route.task) if superseded
                       else functools.partial(self.scheduler.opens, route.task, frame.stamp_ns))
                stages = route.stages_for(frame.message, due)
                if stages is None:
                    continue
                self.scheduler.release(
                    route.task, stages, stamp_ns=frame.stamp_ns, transport_ns=frame.transport_ns,
                    input_delay_ns=None if frame.transport_ns is None or frame.stamp_ns is None
                    else time.time_ns() - frame.stamp_ns)
                cost = time.thread_time_ns() - before
                releasing += cost
                self.scheduler.spinning.record(
                    f'release of {route.task}', frame.received_ns, cost, stamp_ns=frame.stamp_ns,
                    period_ns=self.scheduler.tasks[route.task].period_ns)
        finally:
            self.scheduler.spinning.record(
                topic, frame.received_ns, take_cost + time.thread_time_ns() - start - releasing,
                stamp_ns=frame.stamp_ns)

    def _camera_age(self, topic: str, stamp_ns: int | None, wall_ns: int) -> int | None:
        """The frame's age at ``wall_ns`` where its stamp is on this machine's clock (None
        otherwise, said once per topic)."""
        if stamp_ns is None or not self.scheduler.config.deadline_from_stamp:
            return None
        age = wall_ns - stamp_ns
        if abs(age) <= SAME_CLOCK_NS:
            return age
        if topic not in self._off_clock:
            self._off_clock.add(topic)
            get_logger('deadline_executor').info(
                f'{topic}: header stamps are {age / 1e9:.1f} s from this clock (a replayed '
                'bag, or a camera with a clock of its own): deadlines count from arrival')
        return None

    # rclpy's executor contract, as SingleThreadedExecutor keeps it: every spin goes through
    # _spin_once_impl (after ros2/rclpy#1510 Executor.spin() calls it directly).
    def _spin_once_impl(self, timeout_sec: float | TimeoutObject | None = None,
                        wait_condition: Callable[[], bool] = lambda: False) -> None:
        if not self._started:
            self.scheduler.start()
            self._started = True
        self.scheduler.spinning.follow_current_thread()
        try:
            handler, entity, node = self.wait_for_ready_callbacks(timeout_sec, None,
                                                                  wait_condition)
        except (ShutdownException, ExternalShutdownException, TimeoutException,
                ConditionReachedException):
            return
        start, cpu_before = self.scheduler.clock.now_ns(), time.thread_time_ns()
        handler()
        # A callback that destroyed its own entity (a shutdown) leaves nothing to time.
        with contextlib.suppress(InvalidHandle):
            self._record_callback(entity, node, start, time.thread_time_ns() - cpu_before)
        exception = handler.exception()
        if exception is not None:
            raise exception

    def _record_callback(self, entity: Any, node: Node | None, start: int, cost: int) -> None:
        """Account a callback of the spinning thread that began at ``start`` and used
        ``cost`` of CPU (a routed message accounts its own release)."""
        if isinstance(entity, Subscription) and entity.callback_group in self._routes:
            return
        owner = node.get_name() if node is not None else '?'
        if isinstance(entity, Timer):
            callback = getattr(entity.callback, '__qualname__', 'timer')
            self.scheduler.spinning.record(
                f'{owner}: {callback} every {entity.timer_period_ns / 1e6:g} ms', start, cost,
                period_ns=entity.timer_period_ns)
        elif isinstance(entity, Subscription):
            self.scheduler.spinning.record(f'{owner} on {entity.topic_name}', start, cost)
        elif isinstance(entity, Service):
            self.scheduler.spinning.record(f'{owner} serving {entity.srv_name}', start, cost)

    def spin_once(self, timeout_sec: float | None = None) -> None:
        self._spin_once_impl(timeout_sec)

    def _spin_once_until_future_complete(
            self, future: Future[Any], timeout_sec: float | TimeoutObject | None = None) -> None:
        self._spin_once_impl(timeout_sec, future.done)

    def spin_once_until_future_complete(
            self, future: Future[Any], timeout_sec: float | TimeoutObject | None = None) -> None:
        future.add_done_callback(lambda _: self.wake())
        self._spin_once_until_future_complete(future, timeout_sec)

    def shutdown(self, timeout_sec: float | None = None) -> bool:
        """rclpy's own shutdown first, so that a spin in another thread cannot start the lanes
        again, then stop the lanes after their current stage."""
        shut = super().shutdown(timeout_sec)
        lanes_stopped = self.scheduler.stop(timeout_sec if timeout_sec is not None else 5.0)
        self._started = False
        return shut and lanes_stopped
