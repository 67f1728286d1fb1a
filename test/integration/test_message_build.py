"""edge_perception_msgs builds from the PyPI wheels the way ./scripts/bootstrap builds it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
