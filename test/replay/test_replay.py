"""rosbag2 replay through the real container over real rclpy."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from io import StringIO
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.node import Node
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from sensor_msgs.msg import Image
from std_msgs.msg import Header, String

from edge_perception.cli import main
from edge_perception.ros.container import PerceptionContainer
from edge_perception.tools.bag_errors import BagError
from edge_perception.tools.bags import (
    CAMERA_TOPICS,
    GROUND_TRUTH_TOPICS,
    BagPlayer,
    bag_topics,
    read_bag,
    restamped,
    write_synthetic_bag,
)
from edge_perception.tools.demo import drive, print_report

from .conftest import spin_until


@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_synthetic_bag_holds_frames_and_ground_truth(tmp_path: Path, storage: str) -> None:
    bag = tmp_path / 'drive'
    assert write_synthetic_bag(bag, frames=6, rate_hz=30, cameras=2, storage=storage) == 24
    assert bag_topics(bag) == {
        CAMERA_TOPICS[0]: 'sensor_msgs/msg/Image', CAMERA_TOPICS[1]: 'sensor_msgs/msg/Image',
        GROUND_TRUTH_TOPICS['light']: 'edge_perception_msgs/msg/TrafficLightArray',
        GROUND_TRUTH_TOPICS['sign']: 'edge_perception_msgs/msg/TrafficSignArray'}
    stamps = [m.timestamp_ns for m, _ in read_bag(bag) if m.topic == CAMERA_TOPICS[0]]
    gaps = [b - a for a, b in pairwise(stamps)]
    assert len(gaps) == 5
    assert all(abs(gap - 1e9 / 30) <= 1 for gap in gaps)  # 30 Hz, to the nanosecond


def test_bag_errors_name_the_bag(tmp_path: Path) -> None:
    with pytest.raises(BagError, match=r'Cannot read bag .*missing'):
        bag_topics(tmp_path / 'missing')
    write_synthetic_bag(tmp_path / 'b', frames=1)
    with pytest.raises(BagError, match=r'Cannot write bag .*b: it already exists'):
        write_synthetic_bag(tmp_path / 'b', frames=1)
    with pytest.raises(BagError, match=r"storage 'rosbag1' is not one of"):
        write_synthetic_bag(tmp_path / 'c', frames=1, storage='rosbag1')
    with pytest.raises(BagError, match=r'cameras = 3 must be 1 or 2'):
        write_synthetic_bag(tmp_path / 'd', frames=1, cameras=3)


def test_replay_through_the_container_detects_and_reports(
        tmp_path: Path, ros_context: Context, container: PerceptionContainer) -> None:
    bag = tmp_path / 'drive'
    write_synthetic_bag(bag, frames=30, rate_hz=10)
    listener = Node('diagnostics_listener', context=ros_context)
    arrays: list[DiagnosticArray] = []
    listener.create_subscription(DiagnosticArray, '/diagnostics', arrays.append, 10)
    container.executor.add_node(listener)
    collector = drive(container.config, spin=container.spin_once, context=ros_context, bag=bag)
    lights = collector.results['traffic_light']
    signs = collector.results['traffic_sign']
    assert collector.frames[CAMERA_TOPICS[0]] == 30
    assert lights.received >= 27  # 10 Hz camera into a 100 ms task: every frame
    assert signs.received >= 13  # 200 ms task: every second frame
    assert lights.counts.precision >= 0.9
    assert lights.counts.recall >= 0.9
    assert signs.counts.precision >= 0.85
    assert signs.counts.recall >= 0.85
    container.publish_diagnostics()
    spin_until(container.executor, lambda: bool(arrays))
    names = {status.name for status in arrays[-1].status}
    assert {'edge_perception: traffic_light', 'edge_perception: traffic_sign'} <= names
    # The drive stamps frames as it sends them: the container saw their age on arrival and
    # timed its spinning thread's work per frame, and the analysis has both.
    scheduler = container.scheduler
    assert 0 < scheduler.stats['traffic_light'].transport_max_ns() < 1_000_000_000
    assert scheduler.timing('traffic_light').jitter_ns > 0
    interference = scheduler.spinning.interference(['cpu'], 1.0)
    assert any(t.name.endswith(CAMERA_TOPICS[0]) and 90e6 < t.period_ns < 110e6
               for t in interference)


def test_restamping_patches_the_stamp_and_keeps_the_frame() -> None:
    image = Image(header=Header(stamp=Time(sec=5, nanosec=7), frame_id='camera'),
                  height=2, width=3, encoding='bgr8', step=9, data=bytes(range(18)))
    raw = bytes(serialize_message(image))
    patched = restamped(raw, Image, 1_796_000_000_123_456_789)
    moved = deserialize_message(patched, Image)
    assert (moved.header.stamp.sec, moved.header.stamp.nanosec) == (1_796_000_000, 123_456_789)
    assert (moved.header.frame_id, bytes(moved.data)) == ('camera', bytes(range(18)))
    image.header.stamp = moved.header.stamp
    assert patched == bytes(serialize_message(image))  # only the stamp's 8 bytes moved


def test_corrupted_frames_are_counted_and_the_rest_processed(
        tmp_path: Path, ros_context: Context, container: PerceptionContainer) -> None:
    bag = tmp_path / 'corrupted'
    write_synthetic_bag(bag, frames=30, rate_hz=10, corrupt_every=3)
    collector = drive(container.config, spin=container.spin_once, context=ros_context, bag=bag)
    for node in container.nodes:
        assert sum(node.bad_frames.values()) == 10
        assert set(node.bad_frames) == {'unsupported_encoding', 'data_too_short',
                                        'step_too_small'}
    assert collector.results['traffic_light'].received >= 18  # the 20 good frames
    assert collector.results['traffic_light'].counts.recall >= 0.9


def foreign_bag(path: Path) -> None:
    """A bag written by rosbags alone (no rclpy), with a type this machine lacks."""
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    typestore.register(get_types_from_msg('string data', 'acme_msgs/msg/Widget'))
    string_type = typestore.types['std_msgs/msg/String']
    with Writer(path, version=8, storage_plugin=StoragePlugin.SQLITE3) as writer:
        chatter = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=typestore)
        widget = writer.add_connection('/widgets', 'acme_msgs/msg/Widget', typestore=typestore)
        for index in range(5):
            data = typestore.serialize_cdr(string_type(data=f'hello {index}'),
                                           'std_msgs/msg/String')
            writer.write(chatter, 1_000 + index * 20_000_000, data)
            writer.write(widget, 2_000 + index * 20_000_000, data)


def test_a_drive_without_ground_truth_reports_detections_by_label(
        tmp_path: Path, ros_context: Context, container: PerceptionContainer) -> None:
    """A real drive's bag has no ground truth: the report counts what each task found
    instead of printing nan precision and recall."""
    bag = tmp_path / 'real_drive'
    write_synthetic_bag(bag, frames=20, rate_hz=10, ground_truth=False)
    assert set(bag_topics(bag)) == {CAMERA_TOPICS[0]}
    collector = drive(container.config, spin=container.spin_once, context=ros_context, bag=bag)
    report = StringIO()
    print_report(collector, report)
    text = report.getvalue()
    assert 'nan' not in text
    assert 'no ground truth in this bag' in text
    lights = collector.results['traffic_light']
    assert lights.scored == 0
    assert sum(lights.labels.values()) > 0  # the synthetic drive has lights in most frames
    label, count = lights.labels.most_common(1)[0]
    assert f'{label} {count}' in text


def test_replay_plays_bags_written_by_other_tools(tmp_path: Path,
                                                  ros_context: Context) -> None:
    bag = tmp_path / 'foreign'
    foreign_bag(bag)
    player_node = Node('player', context=ros_context)
    listener = Node('listener', context=ros_context)
    received: list[Any] = []
    listener.create_subscription(String, '/chatter', received.append, 10)
    player = BagPlayer(player_node, bag, rate=2.0)
    assert player.skipped_topics == {'/widgets'}  # acme_msgs is not installed: skipped
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(player_node)
    executor.add_node(listener)
    spin_until(executor, lambda: player.publishers['/chatter'].get_subscription_count() > 0)
    player.play()
    spin_until(executor, lambda: len(received) == 5)
    assert [m.data for m in received] == [f'hello {i}' for i in range(5)]
    executor.shutdown()


def test_replay_options_are_validated(tmp_path: Path, ros_context: Context) -> None:
    write_synthetic_bag(tmp_path / 'b', frames=1)
    node = Node('player', context=ros_context)
    with pytest.raises(BagError, match=r'rate -1.0 must be positive'):
        BagPlayer(node, tmp_path / 'b', rate=-1.0)


def test_looping_a_bag_without_messages_ends_instead_of_spinning(
        tmp_path: Path, ros_context: Context) -> None:
    bag = tmp_path / 'empty'
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    with Writer(bag, version=8, storage_plugin=StoragePlugin.SQLITE3) as writer:
        writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=typestore)
    player = BagPlayer(Node('player', context=ros_context), bag, loop=True)
    player.play()  # returned: it used to loop over nothing at 100 % of a core
    assert (player.done.is_set(), player.published) == (True, 0)


def test_a_message_that_cannot_be_decoded_ends_replay_with_an_error_naming_it(
        tmp_path: Path) -> None:
    """It ended the player's thread with a traceback and `replay` said 0."""
    bag = tmp_path / 'garbled'
    typestore = get_typestore(Stores.ROS2_HUMBLE)
    string_type = typestore.types['std_msgs/msg/String']
    with Writer(bag, version=8, storage_plugin=StoragePlugin.SQLITE3) as writer:
        chatter = writer.add_connection('/chatter', 'std_msgs/msg/String', typestore=typestore)
        for index in range(3):
            writer.write(chatter, 1_000 + index * 1_000_000, typestore.serialize_cdr(
                string_type(data=f'hello {index}'), 'std_msgs/msg/String'))
        writer.write(chatter, 5_000_000, b'\x00\x01\x00\x00\xff\xff\xff\x7f')
    replay = subprocess.run([sys.executable, '-m', 'edge_perception.cli', 'replay', str(bag)],
                            capture_output=True, text=True, timeout=60)
    assert replay.returncode != 0, replay.stdout + replay.stderr
    assert 'message 3 on /chatter (std_msgs/msg/String, 8 bytes' in replay.stderr
    assert 'cannot be decoded' in replay.stderr
    assert 'Traceback' not in replay.stdout + replay.stderr


def test_synth_bag_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(['synth-bag', str(tmp_path / 'cli_bag'), '--frames', '3',
                 '--storage', 'mcap']) == 0
    assert 'wrote 9 messages' in capsys.readouterr().out
    assert main(['synth-bag', str(tmp_path / 'cli_bag'), '--frames', '3']) == 2
    assert 'already exists' in capsys.readouterr().err


def test_replay_stops_on_sigterm_without_a_traceback(tmp_path: Path) -> None:
    """It ended in an ExternalShutdownException traceback."""
    write_synthetic_bag(tmp_path / 'drive', frames=10)
    replay = subprocess.Popen([sys.executable, '-m', 'edge_perception.cli', 'replay',
                               str(tmp_path / 'drive'), '--loop'],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert replay.stdout is not None
    give_up = time.monotonic() + 30
    while 'replaying drive' not in replay.stdout.read(64):
        assert time.monotonic() < give_up, 'replay did not start'
    replay.send_signal(signal.SIGTERM)
    output, _ = replay.communicate(timeout=10)
    assert replay.returncode == 0, output
    assert 'Traceback' not in output
    assert 'stopped after ' in output
