"""edge_perception_msgs builds from the PyPI wheels the way ./scripts/bootstrap builds it,
and the package builds with colcon as on a ROS 2 install; both publish the typed messages."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from edge_perception.ros.message_adapter import message_adapter

from .conftest import spin_until


def build(repo_root: Path, prefix: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(repo_root / 'scripts' / 'build-msgs'), str(prefix),
                           str(prefix.parent / 'build')], capture_output=True, text=True,
                          env={**os.environ, **env})


def test_the_message_package_builds_from_a_clean_tree(repo_root: Path, tmp_path: Path) -> None:
    prefix = tmp_path / 'prefix'
    result = build(repo_root, prefix)
    assert result.returncode == 0, result.stderr
    site = prefix / 'lib' / f'python{sys.version_info.major}.{sys.version_info.minor}'
    assert (prefix / 'share' / 'edge_perception_msgs' / 'msg' / 'TrafficLightArray.msg').is_file()
    # What was built here, not the venv's copy, serialises a message.
    code = ('import edge_perception_msgs.msg as m; from rclpy.serialization import '
            'serialize_message as s; print(m.__file__); '
            'print(len(s(m.TrafficSignArray(variant="full", '
            'signs=[m.TrafficSign(label="stop")]))))')
    imported = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True, env={
            **os.environ, 'PYTHONPATH': str(site / 'site-packages'),
            # This build's libraries before the venv's copy of the same names.
            'LD_LIBRARY_PATH': f'{prefix / "lib"}:{os.environ["LD_LIBRARY_PATH"]}',
            '_ROS_WHEELS_BOOTSTRAP_COMPLETE': '1'})
    assert imported.returncode == 0, imported.stderr
    module, size = imported.stdout.split()
    assert module.startswith(str(prefix))
    assert int(size) > 20


def test_a_missing_cmake_is_named_with_what_to_install(repo_root: Path, tmp_path: Path) -> None:
    result = build(repo_root, tmp_path / 'prefix', CMAKE='/nonexistent/cmake')
    assert result.returncode == 1
    assert 'cmake not found' in result.stderr
    assert 'apt-get install cmake' in result.stderr
    assert not (tmp_path / 'prefix').exists()


def copy_tracked_files(repo_root: Path, into: Path) -> None:
    """The files a fresh clone has (symbolic links kept), from the working tree."""
    into.mkdir(parents=True)
    tracked = subprocess.run(['git', 'ls-files', '-z'], cwd=repo_root, check=True,
                             capture_output=True).stdout
    subprocess.run(['tar', '--null', '-T', '-', '-cf', '-'], cwd=repo_root, check=True,
                   input=tracked, stdout=open(into / '.tar', 'wb'))  # noqa: SIM115
    subprocess.run(['tar', '-xf', '.tar'], cwd=into, check=True)
    (into / '.tar').unlink()


# The venv's colcon (requirements/dev.txt); tests run without the venv on PATH.
COLCON = Path(sys.executable).parent / 'colcon'


@pytest.mark.skipif(not COLCON.is_file(), reason='colcon is not installed in the venv')
def test_colcon_builds_the_package_that_publishes_typed_messages(
        repo_root: Path, tmp_path: Path, ros_context: Context,
        executor: SingleThreadedExecutor) -> None:
    """`colcon build --paths ...` (docs/deployment.md) with the venv as underlay; the
    installed package, not the venv's, then publishes a TrafficLightArray to this process."""
    workspace = tmp_path / 'ws'
    copy_tracked_files(repo_root, workspace / 'src' / 'edge_perception')
    venv = Path(sys.prefix)
    env = {**os.environ, 'AMENT_PREFIX_PATH': str(venv), 'CMAKE_PREFIX_PATH': str(venv)}
    built = subprocess.run(
        [str(COLCON), 'build', '--paths', 'src/edge_perception',
         'src/edge_perception/edge_perception_msgs', '--cmake-args',
         f'-DPython3_EXECUTABLE={sys.executable}', '-DBUILD_TESTING=OFF'],
        cwd=workspace, capture_output=True, text=True, env=env, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    install = workspace / 'install'
    python = f'python{sys.version_info.major}.{sys.version_info.minor}'
    talker = subprocess.Popen([sys.executable, '-c', textwrap.dedent("""
        import time
        import rclpy
        import edge_perception, edge_perception_msgs
        from std_msgs.msg import Header
        from edge_perception.ros.message_adapter import message_adapter
        from edge_perception.tasks.detections import Detection
        print(edge_perception.__file__, edge_perception_msgs.__file__, flush=True)
        rclpy.init()
        node = rclpy.create_node('colcon_talker')
        adapter = message_adapter()
        publisher = node.create_publisher(adapter.detections_type('traffic_light'),
                                          '/test/colcon_lights', 10)
        while publisher.get_subscription_count() == 0:
            time.sleep(0.05)
        light = Detection('green', 3, 0.5, 1.0, 2.0, 3.0, 4.0)
        publisher.publish(adapter.detections(
            'traffic_light', Header(frame_id='colcon'), 'half', [light]))
        time.sleep(1.0)
    """)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env={
        **env,
        'PYTHONPATH': ':'.join(str(install / package / 'lib' / python / 'site-packages')
                               for package in ('edge_perception', 'edge_perception_msgs')),
        'LD_LIBRARY_PATH': f'{install / "edge_perception_msgs" / "lib"}:'
                           f'{os.environ["LD_LIBRARY_PATH"]}',
        'AMENT_PREFIX_PATH': f'{install / "edge_perception"}:{install / "edge_perception_msgs"}:'
                             f'{venv}',
        '_ROS_WHEELS_BOOTSTRAP_COMPLETE': '1'})
    adapter = message_adapter()
    node = Node('colcon_listener', context=ros_context)
    executor.add_node(node)
    received: list[Any] = []
    node.create_subscription(adapter.detections_type('traffic_light'), '/test/colcon_lights',
                             received.append, 10)
    try:
        spin_until(executor, lambda: bool(received), timeout_s=60)
        out, err = talker.communicate(timeout=30)
    finally:
        talker.kill()
        node.destroy_node()
    assert talker.returncode == 0, err
    assert all(path.startswith(str(install)) for path in out.split()), out
    header, variant, [light] = adapter.read_detections('traffic_light', received[0])
    assert (header.frame_id, variant, light.label, light.score) == ('colcon', 'half', 'green', 0.5)
