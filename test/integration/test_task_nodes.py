"""A camera Image goes through real rclpy into the package's nodes; detections come back."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.executors import Executor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image

from edge_perception.core.config import load_config
from edge_perception.core.launch_plan import plan_launch
from edge_perception.ros.container import PerceptionContainer
from edge_perception.ros.image_conversion import decode_image, encode_bgr8
from edge_perception.ros.message_adapter import message_adapter
from edge_perception.synthetic.scenes import Frame, generate_frame
from edge_perception.tasks.detector_decoding import box_iou

from ..conftest import committed_config, write_config
from .conftest import spin_until


class Camera:
    """A test node that publishes frames and collects both output topics."""

    def __init__(self, context: Context, executor: Executor, *,
                 topics: dict[str, str] | None = None) -> None:
        self.executor = executor
        self.node = Node('test_camera', context=context)
        executor.add_node(self.node)
        self.publisher = self.node.create_publisher(Image, '/camera/image_raw', 10)
        topics = topics or {'traffic_light': '/perception/traffic_lights',
                            'traffic_sign': '/perception/traffic_signs'}
        self.outputs: dict[str, list[Any]] = {kind: [] for kind in topics}
        adapter = message_adapter()
        for kind, topic in topics.items():
            self.node.create_subscription(adapter.detections_type(kind), topic,
                                          self.outputs[kind].append, 10)
        # The container subscribes once per camera topic for all its task nodes.
        spin_until(executor, lambda: self.publisher.get_subscription_count() >= 1)

    def publish(self, image: Image) -> None:
        self.publisher.publish(image)

    def wait_for(self, count: int) -> None:
        spin_until(self.executor,
                   lambda: all(len(v) >= count for v in self.outputs.values()))


def frame_with(label: str) -> Frame:
    for index in range(200):
        frame = generate_frame('test', index)
        if any(o.label == label for o in frame.objects):
            return frame
    raise AssertionError(f'no test frame shows {label}')


def image_msg(frame: Frame, sec: int) -> Image:
    msg = Image()
    encode_bgr8(frame.image, msg)
    msg.header.stamp = Time(sec=sec, nanosec=7)
    msg.header.frame_id = 'camera_front'
    return msg


def matches(found: list[Any], truth: Any) -> bool:
    box = (truth.x, truth.y, truth.width, truth.height)
    return any(d.label == truth.label and box_iou((d.x, d.y, d.width, d.height), box) >= 0.5
               for d in found)


def test_container_hosts_exactly_the_planned_nodes(repo_root: Path,
                                                   container: PerceptionContainer) -> None:
    plan = plan_launch(repo_root / 'config' / 'f1tenth.yaml')
    assert [n.get_name() for n in container.nodes] == [n.name for n in plan.nodes]


def test_a_lane_container_hosts_that_lane_alone(repo_root: Path, ros_context: Context) -> None:
    # process_per_lane: each lane's container process hosts its own tasks and lane only.
    config = load_config(repo_root / 'config' / 'f1tenth.yaml')
    container = PerceptionContainer(config, context=ros_context, only_lane='gpu',
                                    select_variants=False, adapt_variants=False)
    try:
        assert container.node.get_name() == 'perception_container_gpu'
        assert [n.task.name for n in container.nodes] == ['traffic_light']
        assert list(container.scheduler.lanes) == ['gpu']
        camera = Camera(ros_context, container.executor,
                        topics={'traffic_light': '/perception/traffic_lights'})
        camera.publish(image_msg(frame_with('red'), sec=5))
        camera.wait_for(1)
    finally:
        container.destroy()


def test_a_lane_container_spins_at_its_lane_priority(repo_root: Path, tmp_path: Path,
                                                    ros_context: Context) -> None:
    # The thread that builds a lane's container spins it: it takes the lane's niceness, so
    # a low-priority lane's whole process yields (run in a thread of its own: the test
    # runner's must keep its priority).
    raw = committed_config()
    raw['lanes']['cpu']['nice'] = 7
    path = write_config(raw, tmp_path / 'nice_lane.yaml')
    seen: dict[str, int] = {}

    def build(lane: str) -> None:
        container = PerceptionContainer(load_config(path), context=ros_context, only_lane=lane,
                                        select_variants=False, adapt_variants=False)
        seen[lane] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        container.destroy()

    for lane in ('cpu', 'gpu'):
        worker = threading.Thread(target=build, args=(lane,))
        worker.start()
        worker.join()
    assert seen == {'cpu': 7, 'gpu': os.getpriority(os.PRIO_PROCESS, 0)}


def test_image_in_detections_out(ros_context: Context,
                                 container: PerceptionContainer) -> None:
    camera = Camera(ros_context, container.executor)
    frame = frame_with('stop')
    camera.publish(image_msg(frame, sec=41))
    camera.wait_for(1)
    adapter = message_adapter()
    for kind, output in camera.outputs.items():
        header, variant, found = adapter.read_detections(kind, output[0])
        assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (
            41, 7, 'camera_front')
        assert variant == 'full'
        wanted = [o for o in frame.objects if (o.kind == 'sign') == (kind == 'traffic_sign')]
        assert all(matches(found, truth) for truth in wanted), (kind, found, wanted)


def test_bad_frame_is_counted_and_the_next_good_one_processed(
        ros_context: Context, container: PerceptionContainer) -> None:
    camera = Camera(ros_context, container.executor)
    bad = image_msg(frame_with('red'), sec=1)
    bad.encoding = 'yuv422'
    truncated = image_msg(frame_with('red'), sec=2)
    truncated.data = truncated.data[:-10]
    camera.publish(bad)
    camera.publish(truncated)
    camera.publish(image_msg(frame_with('red'), sec=3))
    camera.wait_for(1)
    for node in container.nodes:
        # The lane thread counts a frame just after publishing it: the camera can see the
        # message before the count moves.
        spin_until(container.executor, lambda node=node: sum(node.bad_frames.values()) == 2
                   and node.frames_published >= 1)
        assert node.bad_frames == {'unsupported_encoding': 1, 'data_too_short': 1}
        assert node.frames_published >= 1
    header, _, _ = message_adapter().read_detections('traffic_light',
                                                    camera.outputs['traffic_light'][0])
    assert header.stamp.sec == 3


def test_variant_parameter_switches_models_live(ros_context: Context,
                                                container: PerceptionContainer) -> None:
    light_node = container.nodes[0]
    result = light_node.set_parameters([Parameter('variant', value='half')])
    assert result[0].successful
    refused = light_node.set_parameters([Parameter('variant', value='tiny')])
    assert not refused[0].successful
    assert "'tiny' is not one of" in refused[0].reason
    camera = Camera(ros_context, container.executor)
    camera.publish(image_msg(frame_with('green'), sec=5))
    camera.wait_for(1)
    _, variant, _ = message_adapter().read_detections('traffic_light',
                                                     camera.outputs['traffic_light'][0])
    assert variant == 'half'
    assert light_node.get_parameter('variant').value == 'half'


def test_one_subscription_takes_each_frame_for_every_task(
        ros_context: Context, container: PerceptionContainer) -> None:
    """The task nodes do not subscribe: the container takes each camera message once and
    releases a job of every task on that topic from it, decoded once."""
    def image_topics(node: Node) -> list[str]:
        return [sub.topic_name for sub in node.subscriptions if sub.msg_type is Image]

    assert image_topics(container.node) == ['/camera/image_raw']
    assert all(image_topics(node) == [] for node in container.nodes)
    camera = Camera(ros_context, container.executor)
    camera.publish(image_msg(frame_with('stop'), sec=11))
    camera.wait_for(1)
    # A lane thread counts a frame just after publishing it: the output can arrive first.
    spin_until(container.executor, lambda: all(n.frames_published for n in container.nodes))
    assert [(n.frames_received, n.frames_published) for n in container.nodes] == [(1, 1)] * 2
    assert (container.frames.decoded, container.frames.shared) == (1, 1)


def test_a_frame_inside_every_task_s_period_is_counted_but_not_decoded(
        ros_context: Context, container: PerceptionContainer) -> None:
    """A fast camera's frames between two periods cost a take and a count, not a decode
    (a 640x480 frame's conversion ran for every frame at 240 Hz, for nothing)."""
    camera = Camera(ros_context, container.executor)
    first = image_msg(frame_with('stop'), sec=20)
    camera.publish(first)
    camera.wait_for(1)
    between = image_msg(frame_with('stop'), sec=20)
    between.header.stamp.nanosec = 30_000_000  # 30 ms on: inside the 100 and 200 ms periods
    camera.publish(between)
    spin_until(container.executor, lambda: all(n.frames_received == 2 for n in container.nodes))
    assert container.frames.decoded == 1
    assert [container.scheduler.stats[n.task.name].skipped for n in container.nodes] == [1, 1]


def test_a_frame_that_does_not_deserialise_is_counted_and_the_next_one_runs(
        ros_context: Context, container: PerceptionContainer) -> None:
    """The container takes frames serialised: a message cut short (its stamp intact) is a
    bad frame of every task it would have fed, named in the log, and costs nothing else."""
    camera = Camera(ros_context, container.executor)
    whole = bytes(serialize_message(image_msg(frame_with('stop'), sec=30)))
    camera.publisher.publish(whole[:64])
    spin_until(container.executor, lambda: all(
        n.bad_frames['undecodable'] == 1 for n in container.nodes))
    camera.publish(image_msg(frame_with('stop'), sec=31))
    camera.wait_for(1)
    assert all(n.frames_received == 2 for n in container.nodes)


def test_frames_queued_together_release_the_newest(
        ros_context: Context, container: PerceptionContainer) -> None:
    """Frames that queued while the spinning thread was away are taken together and the
    newest is released, as a depth-1 reader would, but the older ones are counted (and
    checked from their bytes, not decoded): the oldest was the one released, up to 5
    frames stale."""
    camera = Camera(ros_context, container.executor)
    for nanosec in (0, 10_000_000, 20_000_000):
        frame = image_msg(frame_with('stop'), sec=50)
        frame.header.stamp.nanosec = nanosec
        camera.publish(frame)
    # Acknowledged by the container's reader: all three wait in its queue.
    assert camera.publisher.wait_for_all_acked(Duration(seconds=10))
    camera.wait_for(1)
    header, _, _ = message_adapter().read_detections('traffic_light',
                                                     camera.outputs['traffic_light'][0])
    assert (header.stamp.sec, header.stamp.nanosec) == (50, 20_000_000)
    assert all(n.frames_received == 3 for n in container.nodes)
    assert [container.scheduler.stats[n.task.name].skipped for n in container.nodes] == [2, 2]
    assert container.frames.decoded == 1


def test_executor_refuses_an_unknown_task(container: PerceptionContainer) -> None:
    with pytest.raises(ValueError, match=r"unknown task 'lidar' \(known: \['traffic_light'"):
        container.executor.assign(MutuallyExclusiveCallbackGroup(), task='lidar',
                                  stages_for=container.nodes[0].job_stages)


def test_adapt_needs_a_container_made_for_it(container: PerceptionContainer) -> None:
    with pytest.raises(RuntimeError, match=r'adapt\(\) needs a container made with'):
        container.adapt()


@pytest.mark.parametrize(('damage', 'reason'), [
    (lambda path: path.write_bytes(path.read_bytes()[:-1] + b'\x01'),
     'does not match its manifest SHA-256'),
    (lambda path: path.unlink(), 'is missing'),
], ids=['tampered', 'deleted'])
def test_a_task_with_a_damaged_model_is_isolated(
        repo_root: Path, tmp_path: Path, ros_context: Context,
        damage: Callable[[Path], object], reason: str) -> None:
    """A tampered or deleted variant file of the sign classifier disables the sign task
    only (a deleted one used to stop the whole launch at config loading)."""
    zoo = tmp_path / 'zoo'
    shutil.copytree(repo_root / 'model_zoo', zoo)
    damage(zoo / 'sign_classifier' / 'half.onnx')
    raw = yaml.safe_load((repo_root / 'config' / 'f1tenth.yaml').read_text())
    raw['model_dir'] = str(zoo)
    config_path = tmp_path / 'config.yaml'
    config_path.write_text(yaml.safe_dump(raw))
    container = PerceptionContainer(load_config(config_path), context=ros_context,
                                    select_variants=False, adapt_variants=False)
    try:
        assert [n.task.name for n in container.nodes] == ['traffic_light']
        assert reason in container.failures['traffic_sign']
        listener = Node('listener', context=ros_context)
        arrays: list[DiagnosticArray] = []
        listener.create_subscription(DiagnosticArray, '/diagnostics', arrays.append, 10)
        container.executor.add_node(listener)
        camera = Camera(ros_context, container.executor, topics={
            'traffic_light': '/perception/traffic_lights'})
        camera.publish(image_msg(frame_with('red'), sec=9))
        camera.wait_for(1)  # the healthy task still works
        container.publish_diagnostics()
        spin_until(container.executor, lambda: bool(arrays))
        statuses = {s.name: s for s in arrays[-1].status}
        sign = statuses['edge_perception: traffic_sign']
        assert sign.level == b'\x02'
        assert 'disabled' in sign.message
        assert statuses['edge_perception: traffic_light'].level == b'\x00'
    finally:
        container.destroy()


def test_debug_images_show_the_detections(ros_context: Context,
                                          container: PerceptionContainer) -> None:
    light_node = container.nodes[0]
    assert light_node.set_parameters([Parameter('publish_debug_image', value=True)])[0].successful
    camera = Camera(ros_context, container.executor)
    debug: list[Image] = []
    camera.node.create_subscription(Image, '/perception/traffic_lights/debug_image',
                                    debug.append, 10)
    spin_until(container.executor,
               lambda: light_node.debug_publisher.get_subscription_count() > 0)
    frame = frame_with('green')
    camera.publish(image_msg(frame, sec=12))
    spin_until(container.executor, lambda: bool(debug))
    annotated = decode_image(debug[0])
    assert (debug[0].header.stamp.sec, debug[0].header.frame_id) == (12, 'camera_front')
    assert annotated.shape == frame.image.shape
    light = next(o for o in frame.objects if o.label == 'green')
    x, y = round(light.x), round(light.y)
    box_edge = annotated[max(0, y - 3): y + 3, max(0, x - 3): x + round(light.width) + 3]
    assert (box_edge != frame.image[max(0, y - 3): y + 3,
                                    max(0, x - 3): x + round(light.width) + 3]).any()
