"""A container whose camera is silent says so on /diagnostics (it used to say OK)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.node import Node
from sensor_msgs.msg import Image

from edge_perception.core.config import load_config
from edge_perception.ros.container import PerceptionContainer
from edge_perception.ros.image_conversion import encode_bgr8
from edge_perception.ros.message_adapter import time_from_ns
from edge_perception.synthetic.scenes import generate_frame

from ..conftest import committed_config, write_config
from .conftest import spin_until

pytestmark = pytest.mark.integration


def test_a_silent_camera_is_an_error_then_ok_once_frames_come(
        ros_context: Context, tmp_path: Path) -> None:
    raw = committed_config()
    raw['input_watchdog'] = {'warn_periods': 1, 'error_periods': 2}  # floors: 1 s, 2 s
    container = PerceptionContainer(load_config(write_config(raw, tmp_path / 'c.yaml')),
                                    context=ros_context, select_variants=False,
                                    adapt_variants=False)
    listener = Node('watchdog_listener', context=ros_context)
    try:
        arrays: list[DiagnosticArray] = []
        listener.create_subscription(DiagnosticArray, '/diagnostics', arrays.append, 10)
        camera = listener.create_publisher(Image, '/camera/image_raw', 10)
        container.executor.add_node(listener)

        def statuses() -> dict[str, dict[str, str]]:
            arrays.clear()
            container.publish_diagnostics()
            spin_until(container.executor, lambda: bool(arrays))
            return {s.name: {'level': str(s.level[0]), 'message': s.message,
                             **{kv.key: kv.value for kv in s.values}}
                    for s in arrays[-1].status}

        silent_since = time.monotonic()
        spin_until(container.executor, lambda: time.monotonic() - silent_since > 2.1)
        for task in ('traffic_light', 'traffic_sign'):
            status = statuses()[f'edge_perception: {task}']
            assert (status['level'], status['input'], status['last_frame_age_s']) == (
                '2', 'error', 'never')
            assert status['message'].startswith('no frame yet (')
            assert status['message'].endswith('is the camera running?')

        spin_until(container.executor, lambda: camera.get_subscription_count() >= 1)
        frame = Image(header=Image().header)
        encode_bgr8(generate_frame('test', 1).image, frame)
        frame.header.stamp = time_from_ns(time.time_ns())
        camera.publish(frame)
        lights = container.nodes[0]
        spin_until(container.executor, lambda: lights.frames_received == 1)
        status = statuses()['edge_perception: traffic_light']
        assert status['input'] == 'ok'
        assert float(status['last_frame_age_s']) < 1.0
        assert status['level'] != '2'
    finally:
        listener.destroy_node()
        container.destroy()
