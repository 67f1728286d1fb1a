"""Real rclpy + DDS: a fresh context per test, on a domain of this test run only."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Keep test traffic off other graphs on this machine, before rclpy reads the environment.
os.environ.setdefault('ROS_DOMAIN_ID', str(100 + os.getpid() % 100))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')

import rclpy
from rclpy.context import Context
from rclpy.executors import Executor, SingleThreadedExecutor

from edge_perception.core.config import load_config
from edge_perception.ros.container import PerceptionContainer


@pytest.fixture
def ros_context() -> Iterator[Context]:
    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)  # a test may have shut it down (as SIGINT does)


@pytest.fixture
def container(repo_root: Path, ros_context: Context) -> Iterator[PerceptionContainer]:
    """The container of config/f1tenth.yaml with the configured variants, no adaptation."""
    container = PerceptionContainer(load_config(repo_root / 'config' / 'f1tenth.yaml'),
                                    context=ros_context, select_variants=False,
                                    adapt_variants=False)
    yield container
    container.destroy()


@pytest.fixture
def executor(ros_context: Context) -> Iterator[SingleThreadedExecutor]:
    executor = SingleThreadedExecutor(context=ros_context)
    try:
        yield executor
    finally:
        executor.shutdown()


def spin_until(executor: Executor, condition: Callable[[], bool],
               timeout_s: float = 60.0, what: Callable[[], str] = lambda: '') -> None:
    """Spin until ``condition()`` holds; fail after ``timeout_s`` of wall time (never a
    fixed sleep), saying ``what()`` was seen."""
    give_up = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > give_up:
            pytest.fail(f'condition not met within {timeout_s} s {what()}'.strip())
        executor.spin_once(timeout_sec=0.05)
