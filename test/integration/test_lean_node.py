"""LeanNode: one QoS event handler per subscription, none per publisher; the one it keeps
still reports a camera that offers incompatible QoS."""

from __future__ import annotations

from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from edge_perception.ros.lean_node import LeanNode

from .conftest import spin_until


def test_only_subscriptions_keep_an_event_handler(ros_context: Context) -> None:
    lean, plain = LeanNode('lean', context=ros_context), Node('plain', context=ros_context)
    try:
        for node in (lean, plain):
            node.create_publisher(Image, 'out', 1)
            node.create_subscription(Image, 'in', lambda msg: None, 1)
        # rclpy's defaults: two per endpoint, its parameter-events publisher included.
        assert len(list(plain.waitables)) == 6
        assert len(list(lean.waitables)) == 1
    finally:
        lean.destroy_node()
        plain.destroy_node()


def test_incompatible_qos_is_counted(ros_context: Context,
                                     executor: SingleThreadedExecutor) -> None:
    lean, camera = LeanNode('lean', context=ros_context), Node('camera', context=ros_context)
    try:
        lean.create_subscription(Image, 'image', lambda msg: None,
                                 QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        camera.create_publisher(Image, 'image',
                                QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
        executor.add_node(lean)
        spin_until(executor, lambda: lean.incompatible_qos['image'] > 0, timeout_s=20.0)
    finally:
        lean.destroy_node()
        camera.destroy_node()
