"""The stock executors a container can spin instead of ours (parameter ``executor``), so
benchmarks compare them under the same process layout, pinning and priorities.

Besides rclpy's own, :class:`PriorityExecutor` is the pattern of ros2/examples'
``examples_rclpy_executors/custom_executor.py``: callbacks of the nodes marked high
priority go to a thread pool of their own, every other callback to one more thread.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from rclpy.context import Context
from rclpy.executors import (
    ConditionReachedException,
    Executor,
    MultiThreadedExecutor,
    ShutdownException,
    SingleThreadedExecutor,
    TimeoutException,
)
from rclpy.experimental.events_executor import EventsExecutor
from rclpy.node import Node


class PriorityExecutor(Executor):
    """Callbacks of :meth:`add_high_priority_node`'s nodes on a pool of one thread per core,
    all others on a single thread, as ros2/examples' custom executor does."""

    def __init__(self, *, context: Context | None = None) -> None:
        super().__init__(context=context)
        self.high_priority_nodes: set[Node] = set()
        self._high = ThreadPoolExecutor(max_workers=os.cpu_count() or 4,
                                        thread_name_prefix='high-priority')
        self._low = ThreadPoolExecutor(max_workers=1, thread_name_prefix='low-priority')

    def add_high_priority_node(self, node: Node) -> None:
        self.high_priority_nodes.add(node)
        self.add_node(node)

    def spin_once(self, timeout_sec: float | None = None) -> None:
        try:
            handler, _, node = self.wait_for_ready_callbacks(timeout_sec=timeout_sec)
        except (ShutdownException, TimeoutException, ConditionReachedException):
            return
        pool = self._high if node in self.high_priority_nodes else self._low
        pool.submit(handler)

    def shutdown(self, timeout_sec: float | None = None) -> bool:
        # Callbacks already handed to a pool finish first (a cancelled one would leave its
        # coroutine never awaited, one run after would find its entities destroyed).
        self._high.shutdown(wait=True)
        self._low.shutdown(wait=True)
        return super().shutdown(timeout_sec)


STOCK_EXECUTORS: dict[str, type[Executor]] = {
    'single_threaded': SingleThreadedExecutor,
    'multi_threaded': MultiThreadedExecutor,
    'events': EventsExecutor,  # type: ignore[dict-item]
    'priority': PriorityExecutor,
}
