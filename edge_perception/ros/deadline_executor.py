"""DeadlineExecutor: rclpy waits for messages, our scheduler decides what runs when.

A custom executor implements rclpy's spin contract; this one waits and takes messages exactly
like rclpy's SingleThreadedExecutor. Subscriptions whose callback group was mapped to tasks with
:meth:`DeadlineExecutor.assign` do not run their callback here: the executor asks each task's
node for the message's staged work and releases it as a job into the
:class:`~edge_perception.core.scheduler.DeadlineScheduler`, whose lane threads run jobs in
deadline-monotonic priority order, stage by stage. One subscription may feed several tasks
(the container subscribes once per camera topic). Every other callback (timers, parameter
services, diagnostics) runs in the spinning thread as usual.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
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
from rclpy.node import Node
from rclpy.subscription import Subscription
from rclpy.task import Future

from edge_perception.core.jobs import Stages
from edge_perception.core.scheduler import DeadlineScheduler
from edge_perception.ros.message_adapter import ns_from_time

StagesFor = Callable[[Any], Stages | None]


@dataclass(frozen=True)
class _Route:
    task: str
    stages_for: StagesFor


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

    def assign(self, group: CallbackGroup, *, task: str, stages_for: StagesFor) -> None:
        """Route messages of subscriptions in ``group`` to ``task``'s lane; a group assigned
        to several tasks releases a job of each per message, most urgent first.

        ``stages_for(msg)`` runs in the spinning thread right after the message is taken (keep
        it cheap: decode and validate); it returns the job's stages, or None to skip the
        message.
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
        try:
            with sub.handle:
                taken = sub.handle.take_message(sub.msg_type, sub.raw)
        except InvalidHandle:
            return None
        if taken is None:
            return None
        msg = taken[0]

        async def release() -> None:
            for route in routes:
                stages = route.stages_for(msg)
                if stages is not None:
                    self.scheduler.release(route.task, stages, stamp_ns=_stamp_ns(msg))

        return release

    # rclpy's executor contract, as SingleThreadedExecutor keeps it: every spin goes through
    # _spin_once_impl (after ros2/rclpy#1510 Executor.spin() calls it directly).
    def _spin_once_impl(self, timeout_sec: float | TimeoutObject | None = None,
                        wait_condition: Callable[[], bool] = lambda: False) -> None:
        if not self._started:
            self.scheduler.start()
            self._started = True
        try:
            handler, _, _ = self.wait_for_ready_callbacks(timeout_sec, None, wait_condition)
        except (ShutdownException, ExternalShutdownException, TimeoutException,
                ConditionReachedException):
            return
        handler()
        exception = handler.exception()
        if exception is not None:
            raise exception

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


def _stamp_ns(msg: Any) -> int | None:
    """The message's header stamp in ns, None for a message without a header or stamp 0."""
    stamp = getattr(getattr(msg, 'header', None), 'stamp', None)
    return None if stamp is None else ns_from_time(stamp) or None
