"""Typed messages (edge_perception_msgs, built by bootstrap): detections and deadline misses
round-trip, also over DDS to another process; markers are only what rviz draws."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest
from builtin_interfaces.msg import Time
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from edge_perception.core.deadline_miss import DeadlineMissEvent
from edge_perception.ros.message_adapter import markers, message_adapter
from edge_perception.tasks.detections import Detection

from .conftest import spin_until

LIGHTS = [Detection(label='red', class_id=1, score=0.75, x=10.0, y=20.0, width=8.0, height=24.0),
          Detection(label='green', class_id=3, score=0.5, x=60.0, y=22.0, width=8.0, height=24.0)]
SIGNS = [Detection(label='speed_50', class_id=4, score=0.5, x=100.0, y=40.0, width=30.0,
                   height=30.0)]
# A generic detector's classes are names only (class_id -1 after the round trip).
OBJECTS = [Detection(label='cone', class_id=-1, score=0.875, x=4.5, y=8.0, width=20.0,
                     height=30.0),
           Detection(label='car', class_id=-1, score=0.25, x=100.0, y=50.0, width=64.0,
                     height=48.0)]
MISS = DeadlineMissEvent(task='traffic_sign', lane='cpu', variant='half', job_id=42,
                         release_ns=5_000_000_123, deadline_ns=200_000_000,
                         response_time_ns=250_500_000, dropped=False)


def header() -> Header:
    return Header(stamp=Time(sec=12, nanosec=345), frame_id='camera_front')


def test_the_types_are_ours_not_markers() -> None:
    adapter = message_adapter()
    assert adapter.detections_type('traffic_light').__name__ == 'TrafficLightArray'
    assert adapter.detections_type('traffic_sign').__name__ == 'TrafficSignArray'
    assert adapter.deadline_miss_type().__name__ == 'DeadlineMiss'
    lights = adapter.detections('traffic_light', header(), 'half', LIGHTS)
    assert [(light.state, light.score) for light in lights.lights] == [(1, 0.75), (3, 0.5)]


@pytest.mark.parametrize(('kind', 'detections'), [('traffic_light', LIGHTS),
                                                  ('traffic_sign', SIGNS),
                                                  ('detection', OBJECTS)])
def test_detections_round_trip(kind: str, detections: list[Detection]) -> None:
    adapter = message_adapter()
    msg = adapter.detections(kind, header(), 'half', detections)
    assert adapter.read_detections(kind, msg) == (header(), 'half', detections)


def test_generic_detections_are_laid_out_as_vision_msgs() -> None:
    """DetectionArray mirrors vision_msgs/Detection2DArray: a box by centre and size, a
    hypothesis with the class name as class_id, the image header on each detection."""
    msg = message_adapter().detections('detection', header(), 'full', OBJECTS)
    cone = msg.detections[0]
    assert type(msg).__name__ == 'DetectionArray'
    assert (cone.bbox.center.position.x, cone.bbox.center.position.y) == (14.5, 23.0)
    assert (cone.bbox.size_x, cone.bbox.size_y, cone.bbox.center.theta) == (20.0, 30.0, 0.0)
    [result] = cone.results
    assert (result.hypothesis.class_id, result.hypothesis.score) == ('cone', 0.875)
    assert cone.header == header()


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown output kind 'lidar'"):
        message_adapter().detections('lidar', header(), 'full', [])


def test_a_deadline_miss_round_trips() -> None:
    adapter = message_adapter()
    msg = adapter.deadline_miss(MISS)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (5, 123)
    assert (msg.deadline.sec, msg.deadline.nanosec) == (0, 200_000_000)
    assert adapter.read_deadline_miss(msg) == MISS


def test_markers_draw_a_box_and_a_label_per_detection() -> None:
    drawn = markers('traffic_light', header(), LIGHTS).markers
    assert drawn[0].action == Marker.DELETEALL
    boxes = [m for m in drawn if m.type == Marker.CUBE]
    labels = [m for m in drawn if m.type == Marker.TEXT_VIEW_FACING]
    assert [m.text for m in labels] == ['red 0.75', 'green 0.50']
    assert (boxes[0].pose.position.x, boxes[0].pose.position.y) == (14.0, 32.0)
    assert (boxes[0].color.r, boxes[0].color.g) == (1.0, 0.0)  # red light, red box
    assert len({m.id for m in drawn}) == len(drawn)


def test_without_the_built_package_the_error_says_how_to_build_it() -> None:
    code = textwrap.dedent("""
        import sys
        sys.modules['edge_perception_msgs'] = None  # as if never built
        from edge_perception.ros.message_adapter import message_adapter
        message_adapter()
    """)
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode != 0
    assert 'edge_perception_msgs is not built: run ./scripts/bootstrap' in result.stderr


def test_detections_survive_a_trip_through_dds(ros_context: Context,
                                               executor: SingleThreadedExecutor) -> None:
    adapter = message_adapter()
    node = Node('adapter_test', context=ros_context)
    executor.add_node(node)
    received: list[Any] = []
    msg_type = adapter.detections_type('traffic_sign')
    publisher = node.create_publisher(msg_type, '/test/signs', 10)
    node.create_subscription(msg_type, '/test/signs', received.append, 10)
    spin_until(executor, lambda: publisher.get_subscription_count() > 0)
    publisher.publish(adapter.detections('traffic_sign', header(), 'full', SIGNS))
    spin_until(executor, lambda: bool(received))
    assert adapter.read_detections('traffic_sign', received[0]) == (header(), 'full', SIGNS)
    node.destroy_node()


def test_another_process_receives_every_field(ros_context: Context,
                                              executor: SingleThreadedExecutor) -> None:
    """A subscriber in its own process (as ros2 topic echo or a planner would be) gets the
    typed message with every field intact."""
    listener = subprocess.Popen([sys.executable, '-c', textwrap.dedent("""
        import rclpy
        from edge_perception_msgs.msg import TrafficLightArray
        rclpy.init()
        node = rclpy.create_node('typed_listener')
        got = []
        node.create_subscription(TrafficLightArray, '/test/typed_lights', got.append, 10)
        while not got:
            rclpy.spin_once(node, timeout_sec=0.1)
        msg = got[0]
        print(msg.header.frame_id, msg.variant,
              [(l.state, round(l.score, 2), l.x, l.y, l.width, l.height) for l in msg.lights])
    """)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    adapter = message_adapter()
    node = Node('typed_talker', context=ros_context)
    executor.add_node(node)
    publisher = node.create_publisher(adapter.detections_type('traffic_light'),
                                      '/test/typed_lights', 10)
    try:
        spin_until(executor, lambda: publisher.get_subscription_count() > 0, timeout_s=60)
        publisher.publish(adapter.detections('traffic_light', header(), 'quarter', LIGHTS))
        out, err = listener.communicate(timeout=60)
    finally:
        listener.kill()
        node.destroy_node()
    assert out.strip() == ('camera_front quarter [(1, 0.75, 10.0, 20.0, 8.0, 24.0), '
                           '(3, 0.5, 60.0, 22.0, 8.0, 24.0)]'), err
