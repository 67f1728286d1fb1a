"""ros2/examples' priority executor as the benchmark runs it: the high-priority node's
callbacks on their own threads, every other node's on one other thread."""

from __future__ import annotations

import threading

from rclpy.context import Context
from rclpy.node import Node

from edge_perception.ros.stock_executors import PriorityExecutor

from .conftest import spin_until


def test_callbacks_run_on_the_threads_of_their_nodes_priority(ros_context: Context) -> None:
    executor = PriorityExecutor(context=ros_context)
    urgent, other = (Node(name, context=ros_context) for name in ('urgent', 'other'))
    ran: dict[str, list[str]] = {'urgent': [], 'other': []}
    for node, calls in ((urgent, ran['urgent']), (other, ran['other'])):
        node.create_timer(0.01, lambda calls=calls: calls.append(
            threading.current_thread().name))
    executor.add_high_priority_node(urgent)
    executor.add_node(other)
    try:
        spin_until(executor, lambda: min(len(calls) for calls in ran.values()) >= 5)
    finally:
        executor.shutdown()
        urgent.destroy_node()
        other.destroy_node()
    assert all(t.startswith('high-priority') for t in ran['urgent'])
    assert all(t.startswith('low-priority') for t in ran['other'])
    assert len(set(ran['other'])) == 1  # one thread for everything else
