"""The executor benchmark's stock baselines: a container process per lane, spinning a stock
executor with the lane's pinning and priority (applied or logged), camera subscriptions
KEEP_LAST 1, started exactly as ours is (ours checked alike); and every row of the benchmark
in a short run."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from rclpy.context import Context
from rclpy.node import Node
from sensor_msgs.msg import Image

from edge_perception.bench.executor_comparison import ROWS
from edge_perception.bench.executor_sweep import sweep
from edge_perception.core.config import load_config
from edge_perception.core.launch_plan import plan_launch
from edge_perception.ros.image_conversion import encode_bgr8
from edge_perception.ros.message_adapter import message_adapter
from edge_perception.synthetic.scenes import generate_frame
from edge_perception.tools.lane_processes import FIXED_VARIANTS, ChildProcesses, Observer

from ..conftest import committed_config
from .conftest import spin_until

LANE_CPU = max(os.sched_getaffinity(0))


def lane_config(tmp_path: Path) -> Path:
    raw = committed_config()
    raw['process_per_lane'] = True
    raw['inputs'] = {'/camera/image_raw': {'reliability': 'reliable', 'depth': 1}}
    raw['lanes']['gpu'].update(cpus=[LANE_CPU], rt_priority=10)
    path = tmp_path / 'stock.yaml'
    path.write_text(yaml.safe_dump(raw))
    return path


PER_LANE_STOCK = sorted({setup.executor for setup in ROWS.values()
                         if setup.per_lane and setup.executor != 'deadline'})


def test_the_baselines_are_the_documented_ones() -> None:
    assert PER_LANE_STOCK == ['events', 'priority', 'single_threaded']
    one_process = {(s.executor, s.depth_one) for s in ROWS.values() if not s.per_lane}
    assert one_process == {('single_threaded', False), ('multi_threaded', False),
                           ('priority', True)}
    assert all(s.depth_one for s in ROWS.values() if s.per_lane and s.executor != 'deadline')


@pytest.mark.parametrize('executor', ['deadline', *PER_LANE_STOCK])
def test_a_lane_container_runs_as_documented(
        tmp_path: Path, ros_context: Context, executor: str) -> None:
    config = lane_config(tmp_path)
    [gpu] = [spec for spec in plan_launch(config).containers if spec.lane == 'gpu']
    observer = Observer(ros_context, 'stock_observer')
    node = Node('stock_camera', context=ros_context)
    observer.executor.add_node(node)
    outputs: list[Any] = []
    node.create_subscription(message_adapter().detections_type('traffic_light'),
                             '/perception/traffic_lights', outputs.append, 10)
    camera = node.create_publisher(Image, '/camera/image_raw', 10)
    try:
        with ChildProcesses(log_dir=tmp_path) as children:
            children.start_containers([gpu], parameters={**FIXED_VARIANTS,
                                                         'executor': executor})
            observer.wait_for_lanes(['gpu'], children)
            log = (tmp_path / f'{gpu.name}.log').read_text()
            # The lane's settings reach the spinning thread, or the refusal is logged: ours
            # receives one real-time level above its lane, a stock one does the lane's work.
            thread, rt = (('spinning thread', 11) if executor == 'deadline'
                          else (f'stock {executor}', 10))
            assert f'lane gpu ({thread}): pinned to CPUs [{LANE_CPU}]' in log
            assert re.search(rf'lane gpu \({thread}\): SCHED_FIFO '
                             rf'(priority {rt}|{rt} not permitted)', log), log
            # KEEP_LAST 1: the newest frame wins (DDS does not tell other processes a depth).
            assert 'subscribed to /camera/image_raw: reliable, KEEP_LAST 1' in log
            if executor == 'priority':
                assert ('priority executor: traffic_light_detector on the high-priority '
                        'threads') in log
            frame = Image()
            encode_bgr8(generate_frame('test', 3).image, frame)
            frame.header.stamp.sec = 3
            spin_until(observer.executor, lambda: camera.get_subscription_count() > 0)
            camera.publish(frame)
            spin_until(observer.executor, lambda: bool(outputs))
            children.check()
    finally:
        node.destroy_node()
        observer.destroy()
    assert outputs[0].header.stamp.sec == 3


def test_an_unknown_executor_is_refused_by_name(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = lane_config(tmp_path)
    result = subprocess.run(
        [sys.executable, '-m', 'edge_perception.ros.container', '--ros-args', '-p',
         f'config_file:={config}', '-p', 'executor:=fifo'],
        capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "parameter executor: 'fifo' is not 'deadline' or one of" in result.stderr


def test_a_short_run_produces_every_row(repo_root: Path, tmp_path: Path) -> None:
    """The benchmark end to end, one load, one run, a few frames: each row's containers
    start, take the drive and answer, ours with their analysis, the stock ones without."""
    base = load_config(repo_root / 'config' / 'f1tenth.yaml')
    [run] = sweep(base, tmp_path, loads=(0.8,), runs=1, frames=12, sign_tasks=2)
    tasks = {task.name for task in run.workload.config.tasks}
    assert len(tasks) == 3
    for name, setup in ROWS.items():
        mine = [row for row in run.rows if row.executor == name]
        assert {row.task for row in mine} == tasks, name
        assert all(row.frames == 12 for row in mine), name
        # The row's containers ran and answered (ours may drop jobs it cannot finish in time).
        assert sum(len(row.response_ms) for row in mine) > 0, name
        reported = [row.executor_misses is not None for row in mine]
        assert all(reported) if setup.executor == 'deadline' else not any(reported), name
    assert (run.workload.bag.parent / 'priority_one_depth1.yaml').is_file()
