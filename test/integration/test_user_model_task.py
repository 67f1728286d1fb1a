"""A user's YOLO model becomes a scheduled task by add-model and config alone: the container
publishes its DetectionArray, checked against onnxruntime and a reference decoding."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.node import Node
from sensor_msgs.msg import Image

from edge_perception.cli import main
from edge_perception.core.config import load_config
from edge_perception.ros.container import PerceptionContainer
from edge_perception.ros.image_conversion import encode_bgr8
from edge_perception.ros.message_adapter import message_adapter

from ..conftest import committed_config
from ..runtime.test_user_models import reference_detections
from ..user_models import red_and_green_image, yolo_v8
from .conftest import spin_until
from .test_task_nodes import Camera

CONES = {'name': 'cones', 'node': 'cone_detector', 'pipeline': 'yolo', 'period_ms': 100.0,
         'deadline_ms': 50.0, 'lane': 'cpu', 'models': ['cones'], 'variants': ['full'],
         'variant': 'full', 'input_topic': '/camera/image_raw',
         'output_topic': '/perception/cones'}
TOPICS = {'traffic_light': '/perception/traffic_lights',
          'traffic_sign': '/perception/traffic_signs', 'detection': '/perception/cones'}


def three_task_config(repo_root: Path, tmp_path: Path, task: dict[str, Any]) -> Path:
    zoo = tmp_path / 'zoo'
    shutil.copytree(repo_root / 'model_zoo', zoo)
    assert main(['add-model', str(yolo_v8(tmp_path / 'cones.onnx')), '--zoo', str(zoo),
                 '--name', 'cones', '--kind', 'yolo', '--no-compile']) == 0
    raw = committed_config()
    raw['model_dir'] = str(zoo)
    raw['tasks'].append(task)
    path = tmp_path / 'three_tasks.yaml'
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_yolo_model_runs_as_a_third_task_from_config_alone(
        repo_root: Path, tmp_path: Path, ros_context: Context) -> None:
    config = three_task_config(repo_root, tmp_path, CONES)
    container = PerceptionContainer(load_config(config), context=ros_context,
                                    select_variants=False, adapt_variants=False)
    try:
        assert [n.task.name for n in container.nodes] == ['traffic_light', 'traffic_sign',
                                                          'cones']
        # Deadline-monotonic: its 50 ms deadline makes it the most urgent task.
        assert container.scheduler.priorities['cones'] == 0
        listener = Node('listener', context=ros_context)
        arrays: list[DiagnosticArray] = []
        listener.create_subscription(DiagnosticArray, '/diagnostics', arrays.append, 10)
        container.executor.add_node(listener)
        camera = Camera(ros_context, container.executor, topics=TOPICS)
        image = red_and_green_image()
        msg = Image()
        encode_bgr8(image, msg)
        msg.header.stamp.sec, msg.header.frame_id = 5, 'camera_front'
        camera.publish(msg)
        camera.wait_for(1)
        header, variant, found = message_adapter().read_detections(
            'detection', camera.outputs['detection'][0])
        assert (header.stamp.sec, header.frame_id, variant) == (5, 'camera_front', 'full')
        expected = sorted(reference_detections(tmp_path / 'cones.onnx', image))
        got = sorted((d.label, d.score, [d.x, d.y, d.width, d.height]) for d in found)
        assert [g[0] for g in got] == [e[0] for e in expected]
        for (_, score, box), (_, want_score, want_box) in zip(got, expected, strict=True):
            assert score == pytest.approx(want_score, abs=1e-3)
            assert box == pytest.approx(want_box, abs=0.1)
        container.publish_diagnostics()
        spin_until(container.executor, lambda: bool(arrays))
        cones = {s.name: s for s in arrays[-1].status}['edge_perception: cones']
        values = {kv.key: kv.value for kv in cones.values}
        assert (values['engine'], values['completed']) == ('onnxruntime', '1')
        assert cones.level == b'\x01'  # WARN: untuned, with the command that tunes it
        assert 'edge-perception tune --models cones' in cones.message
    finally:
        container.destroy()


def test_a_model_that_does_not_fit_its_pipeline_disables_that_task_only(
        repo_root: Path, tmp_path: Path, ros_context: Context) -> None:
    config = three_task_config(repo_root, tmp_path, {**CONES, 'models': ['sign_classifier'],
                                                     'variants': ['full', 'half']})
    container = PerceptionContainer(load_config(config), context=ros_context,
                                    select_variants=False, adapt_variants=False)
    try:
        assert [n.task.name for n in container.nodes] == ['traffic_light', 'traffic_sign']
        assert container.failures['cones'] == (
            "task 'cones': a yolo task needs a yolo model; 'sign_classifier' is declared "
            "'classifier' in the manifest")
    finally:
        container.destroy()
