"""`edge-perception report` on a recorded run: outputs and miss events read from a rosbag2."""

from __future__ import annotations

from pathlib import Path

import pytest
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import Writer
from std_msgs.msg import Header

from edge_perception.cli import main
from edge_perception.core.config import load_config
from edge_perception.core.deadline_miss import DeadlineMissEvent
from edge_perception.monitor.timeline import TimelineError
from edge_perception.ros.message_adapter import (
    DEADLINE_MISS_TOPIC,
    markers,
    message_adapter,
    time_from_ns,
)
from edge_perception.tasks.detections import Detection
from edge_perception.tools.bag_timelines import bag_timelines
from edge_perception.tools.bags import typestore

START = 1_800_000_000_000_000_000
MS = 1_000_000


def record(bag: Path, *, lights_topic: str, markers_instead: bool = False,
           with_miss: bool = True) -> None:
    """What `ros2 bag record` would have kept of a short run: 5 light outputs (the third
    late), and one dropped job reported on the miss topic. ``markers_instead``: the outputs
    were rviz markers, not the typed lights."""
    adapter = message_adapter()
    types = typestore()
    with Writer(bag, version=9) as writer:
        lights = writer.add_connection(
            lights_topic, 'visualization_msgs/msg/MarkerArray' if markers_instead
            else 'edge_perception_msgs/msg/TrafficLightArray', typestore=types)
        misses = writer.add_connection(DEADLINE_MISS_TOPIC,
                                       'edge_perception_msgs/msg/DeadlineMiss', typestore=types)
        for i in range(5):
            stamp = START + i * 100 * MS
            response = (150 if i == 2 else 30) * MS
            header = Header(stamp=time_from_ns(stamp))
            found = [Detection('red', 1, 0.9, 10, 10, 8, 20)]
            msg = (markers('traffic_light', header, found) if markers_instead
                   else adapter.detections('traffic_light', header, 'full', found))
            writer.write(lights, stamp + response, serialize_message(msg))
        dropped = DeadlineMissEvent(task='traffic_light', lane='gpu', variant='full', job_id=9,
                                    release_ns=START + 550 * MS, deadline_ns=100 * MS,
                                    response_time_ns=101 * MS, dropped=True)
        if with_miss:
            writer.write(misses, START + 660 * MS,
                         serialize_message(adapter.deadline_miss(dropped)))


def test_bag_gives_response_times_and_dropped_frames(repo_root: Path, tmp_path: Path) -> None:
    config = load_config(repo_root / 'config' / 'f1tenth.yaml')
    record(tmp_path / 'run', lights_topic=config.task('traffic_light').output_topic)
    (lights,) = bag_timelines(tmp_path / 'run', config)
    assert lights.task == 'traffic_light'
    assert [s.response_ms for s in lights.samples] == [30.0, 30.0, 150.0, 30.0, 30.0, None]
    assert lights.miss_ratio == pytest.approx(2 / 6)


def test_report_command_plots_a_bag(repo_root: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(repo_root / 'config' / 'f1tenth.yaml')
    record(tmp_path / 'run', lights_topic=config.task('traffic_light').output_topic)
    assert main(['report', str(tmp_path / 'run'), '--out', str(tmp_path / 'plots')]) == 0
    assert 'traffic_light' in capsys.readouterr().out
    assert (tmp_path / 'plots' / 'response_cdf.png').stat().st_size > 10_000
    assert (tmp_path / 'plots' / 'miss_timeline.png').stat().st_size > 10_000


def test_a_bag_without_outputs_or_with_a_bad_one_is_named(repo_root: Path,
                                                          tmp_path: Path) -> None:
    config = load_config(repo_root / 'config' / 'f1tenth.yaml')
    record(tmp_path / 'other', lights_topic='/somebody/else', with_miss=False)
    with pytest.raises(TimelineError, match='has no output of the configured tasks'):
        bag_timelines(tmp_path / 'other', config)
    record(tmp_path / 'bad', lights_topic=config.task('traffic_light').output_topic,
           markers_instead=True)
    with pytest.raises(TimelineError, match='is not a TrafficLightArray'):
        bag_timelines(tmp_path / 'bad', config)
