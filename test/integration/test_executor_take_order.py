"""Frames that wait together are taken urgent first: the DeadlineExecutor orders its nodes,
and the tasks that one subscription feeds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.context import Context
from rclpy.node import Node
from rclpy.task import Future
from sensor_msgs.msg import Image

from edge_perception.core.config import load_config
from edge_perception.core.scheduler import DeadlineScheduler
from edge_perception.ros.deadline_executor import DeadlineExecutor
from edge_perception.ros.taken_message import TakenMessage

from .conftest import spin_until


@pytest.fixture
def deadline_executor(repo_root: Path, ros_context: Context) -> Iterator[DeadlineExecutor]:
    # f1tenth.yaml: traffic_light (deadline 100 ms) outranks traffic_sign (200 ms).
    scheduler = DeadlineScheduler(load_config(repo_root / 'config' / 'f1tenth.yaml'))
    executor = DeadlineExecutor(scheduler, context=ros_context)
    try:
        yield executor
    finally:
        executor.shutdown()


def task_node(executor: DeadlineExecutor, context: Context, task: str) -> Node:
    node = Node(f'{task}_node', context=context)
    group = MutuallyExclusiveCallbackGroup()
    node.create_subscription(Image, f'/{task}/image', lambda msg: None, 1,
                             callback_group=group)
    executor.assign(group, task=task, stages_for=lambda msg, due: None)
    return node


def test_nodes_of_urgent_tasks_come_first(deadline_executor: DeadlineExecutor,
                                          ros_context: Context) -> None:
    # Added least urgent first, with an unassigned node (diagnostics, monitor) in between.
    nodes = [task_node(deadline_executor, ros_context, 'traffic_sign'),
             Node('aaa_unassigned', context=ros_context),
             task_node(deadline_executor, ros_context, 'traffic_light')]
    try:
        for node in nodes:
            deadline_executor.add_node(node)
        assert [n.get_name() for n in deadline_executor.get_nodes()] == [
            'traffic_light_node', 'traffic_sign_node', 'aaa_unassigned']
    finally:
        for node in nodes:
            node.destroy_node()


def test_one_message_releases_every_task_of_its_group_urgent_first(
        deadline_executor: DeadlineExecutor, ros_context: Context) -> None:
    """A group assigned to several tasks (least urgent first here) asks each task for its
    work per message, most urgent first, and releases nothing twice."""
    asked: list[tuple[str, int]] = []
    node = Node('camera_tasks', context=ros_context)
    group = MutuallyExclusiveCallbackGroup()
    node.create_subscription(Image, '/shared/image', lambda msg: None, 1, callback_group=group)
    for task in ('traffic_sign', 'traffic_light'):
        deadline_executor.assign(group, task=task, stages_for=lambda msg, due, task=task: (
            asked.append((task, msg.message().header.stamp.sec))))
    camera = Node('camera', context=ros_context)
    publisher = camera.create_publisher(Image, '/shared/image', 1)
    try:
        for each in (node, camera):
            deadline_executor.add_node(each)
        spin_until(deadline_executor, lambda: publisher.get_subscription_count() >= 1)
        message = Image()
        message.header.stamp.sec = 5
        publisher.publish(message)
        spin_until(deadline_executor, lambda: len(asked) >= 2)
        assert asked == [('traffic_light', 5), ('traffic_sign', 5)]
    finally:
        for each in (node, camera):
            each.destroy_node()


def test_spin_releases_jobs_until_shutdown(deadline_executor: DeadlineExecutor,
                                           ros_context: Context) -> None:
    """``executor.spin()``: what ``rclpy.spin`` and launch files call (rclpy after Kilted
    routes it through ``_spin_once_impl``, which SingleThreadedExecutor-style executors
    define). It returns once the context shuts down, here from the job's stage."""
    ran: list[int] = []

    def stages(msg: TakenMessage, due: Callable[[], bool]) -> Iterator[None]:
        ran.append(msg.message().header.stamp.sec)
        ros_context.try_shutdown()  # as SIGINT would: spin() must return
        yield from ()

    node = Node('camera_task', context=ros_context)
    group = MutuallyExclusiveCallbackGroup()
    node.create_subscription(Image, '/spun/image', lambda msg: None, 1, callback_group=group)
    deadline_executor.assign(group, task='traffic_light', stages_for=stages)
    publisher = node.create_publisher(Image, '/spun/image', 1)
    stamped = Image()
    stamped.header.stamp.sec = 7
    node.create_timer(0.05, lambda: publisher.publish(stamped))  # until discovery is done
    deadline_executor.add_node(node)
    deadline_executor.spin()  # the test hangs (pytest-timeout fails it) if spin never returns
    assert ran[:1] == [7]
    node.destroy_node()


def test_spin_until_future_complete(deadline_executor: DeadlineExecutor,
                                    ros_context: Context) -> None:
    node = Node('future_setter', context=ros_context)
    future: Future[str] = Future()
    node.create_timer(0.01, lambda: future.done() or future.set_result('set by a timer'))
    deadline_executor.add_node(node)
    try:
        deadline_executor.spin_until_future_complete(future, timeout_sec=30.0)
        assert future.result() == 'set by a timer'
    finally:
        node.destroy_node()
