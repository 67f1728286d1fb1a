"""The standard-type encoding round-trips detections and deadline misses, also over DDS."""

from __future__ import annotations

from typing import Any

import pytest
from builtin_interfaces.msg import Time
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Header

from edge_perception.core.deadline_miss import DeadlineMissEvent
from edge_perception.ros.message_adapter import StandardAdapter, message_adapter
from edge_perception.tasks.detections import Detection

from .conftest import spin_until

DETECTIONS = [
    Detection(label='red', class_id=1, score=0.75, x=10.0, y=20.0, width=8.0, height=24.0),
    Detection(label='speed_50', class_id=4, score=0.5, x=100.0, y=40.0, width=30.0, height=30.0),
]


def header() -> Header:
    return Header(stamp=Time(sec=12, nanosec=345), frame_id='camera_front')


def test_without_generated_types_the_standard_encoding_is_chosen() -> None:
    assert isinstance(message_adapter(), StandardAdapter)
    assert message_adapter().generated is False


@pytest.mark.parametrize('kind', ['traffic_light', 'traffic_sign'])
def test_detections_round_trip(kind: str) -> None:
    adapter = StandardAdapter()
    msg = adapter.detections(kind, header(), 'half', DETECTIONS)
    read_header, variant, detections = adapter.read_detections(kind, msg)
    assert read_header == header()
    assert variant == 'half'
    assert detections == DETECTIONS


def test_empty_frame_still_carries_header_and_variant() -> None:
    adapter = StandardAdapter()
    msg = adapter.detections('traffic_light', header(), 'quarter', [])
    assert adapter.read_detections('traffic_light', msg) == (header(), 'quarter', [])


def test_reading_the_wrong_kind_is_refused() -> None:
    adapter = StandardAdapter()
    msg = adapter.detections('traffic_light', header(), 'full', DETECTIONS)
    with pytest.raises(ValueError, match=r'not a traffic_sign MarkerArray'):
        adapter.read_detections('traffic_sign', msg)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown output kind 'lidar'"):
        StandardAdapter().detections('lidar', header(), 'full', [])


def test_deadline_miss_follows_diagnostic_conventions() -> None:
    event = DeadlineMissEvent(task='traffic_sign', lane='cpu', variant='half', job_id=42,
                              release_ns=5_000_000_123, deadline_ns=200_000_000,
                              response_time_ns=250_500_000, dropped=False)
    msg = StandardAdapter().deadline_miss(event)
    (status,) = msg.status
    assert status.name == 'edge_perception: traffic_sign'
    assert status.level == b'\x01'  # WARN
    assert status.hardware_id == 'cpu'
    assert {kv.key: kv.value for kv in status.values} == {
        'job_id': '42', 'variant': 'half', 'deadline_ms': '200.000',
        'response_time_ms': '250.500', 'dropped': 'false'}
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (5, 123)
    assert StandardAdapter().read_deadline_miss(msg) == event


def test_a_foreign_diagnostic_array_is_no_deadline_miss() -> None:
    event = DeadlineMissEvent(task='t', lane='cpu', variant='full', job_id=1, release_ns=0,
                              deadline_ns=1, response_time_ns=2, dropped=True)
    msg = StandardAdapter().deadline_miss(event)
    msg.status[0].name = 'camera: fps'
    with pytest.raises(ValueError, match='not a deadline-miss DiagnosticArray'):
        StandardAdapter().read_deadline_miss(msg)
    msg.status[0].name = 'edge_perception: t'
    msg.status[0].values = []
    with pytest.raises(ValueError, match="status 'edge_perception: t' has a bad value"):
        StandardAdapter().read_deadline_miss(msg)


def test_detections_survive_a_trip_through_dds(ros_context: Context,
                                               executor: SingleThreadedExecutor) -> None:
    adapter = StandardAdapter()
    node = Node('adapter_test', context=ros_context)
    executor.add_node(node)
    received: list[Any] = []
    msg_type = adapter.detections_type('traffic_sign')
    publisher = node.create_publisher(msg_type, '/test/signs', 10)
    node.create_subscription(msg_type, '/test/signs', received.append, 10)
    spin_until(executor, lambda: publisher.get_subscription_count() > 0)
    publisher.publish(adapter.detections('traffic_sign', header(), 'full', DETECTIONS))
    spin_until(executor, lambda: bool(received))
    assert adapter.read_detections('traffic_sign', received[0]) == (header(), 'full', DETECTIONS)
    node.destroy_node()
