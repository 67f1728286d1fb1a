"""The launch file and `edge-perception launch` start what core.launch_plan derives.

launch/launch_ros are not installable here, so the launch file runs against minimal
stand-ins that record the actions it creates; the plan itself is the real helper.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from edge_perception.core.config import ConfigError
from edge_perception.core.launch_plan import plan_launch

from ..conftest import committed_config, write_config


class Recorded:
    """A launch action stand-in: remembers its constructor arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


class LaunchConfiguration:
    def __init__(self, name: str) -> None:
        self.name = name

    def perform(self, context: dict[str, str]) -> str:
        return context[self.name]


def install_stand_ins(monkeypatch: pytest.MonkeyPatch, share: Path) -> None:
    def module(name: str, **attrs: Any) -> None:
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))

    module('launch', LaunchDescription=Recorded)
    module('launch.actions', DeclareLaunchArgument=type('Declare', (Recorded,), {}),
           ExecuteProcess=type('ExecuteProcess', (Recorded,), {}),
           LogInfo=type('LogInfo', (Recorded,), {}),
           OpaqueFunction=type('OpaqueFunction', (Recorded,), {}))
    module('launch.substitutions', LaunchConfiguration=LaunchConfiguration)
    module('launch_ros', actions=None)
    module('launch_ros.actions', Node=type('Node', (Recorded,), {}))
    module('ament_index_python.packages', get_package_share_directory=lambda _: str(share))


def run_launch_file(repo_root: Path, context: dict[str, str]) -> list[Recorded]:
    spec = importlib.util.spec_from_file_location('f1tenth_launch',
                                                  repo_root / 'launch' / 'f1tenth.launch.py')
    assert spec is not None
    assert spec.loader is not None
    launch_file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch_file)
    description = launch_file.generate_launch_description()
    declared = {a.args[0]: a.kwargs['default_value'] for a in description.args[0]
                if type(a).__name__ == 'Declare'}
    opaque = next(a for a in description.args[0] if type(a).__name__ == 'OpaqueFunction')
    return list(opaque.kwargs['function']({**declared, **context}))


def test_plan_lists_one_node_per_configured_task(repo_root: Path) -> None:
    plan = plan_launch(repo_root / 'config' / 'f1tenth.yaml')
    assert [(n.name, n.task) for n in plan.nodes] == [
        ('traffic_light_detector', 'traffic_light'), ('sign_recognizer', 'traffic_sign')]
    [container] = plan.containers
    assert container.name == 'perception_container'
    assert container.parameters == {
        'config_file': str(repo_root / 'config' / 'f1tenth.yaml'), 'lane': ''}
    assert plan.bag is None


def process_per_lane_config(tmp_path: Path) -> Path:
    return write_config({**committed_config(), 'process_per_lane': True},
                        tmp_path / 'per_lane.yaml')


def test_process_per_lane_plans_one_container_per_lane(repo_root: Path,
                                                       tmp_path: Path) -> None:
    plan = plan_launch(process_per_lane_config(tmp_path))
    assert [(c.name, c.lane, [n.task for n in c.nodes]) for c in plan.containers] == [
        ('perception_container_cpu', 'cpu', ['traffic_sign']),
        ('perception_container_gpu', 'gpu', ['traffic_light'])]
    assert plan.containers[1].parameters['lane'] == 'gpu'
    assert [n.task for n in plan.nodes] == ['traffic_sign', 'traffic_light']


def test_launch_file_starts_the_planned_container(repo_root: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    install_stand_ins(monkeypatch, share=repo_root)
    actions = run_launch_file(repo_root, {})
    plan = plan_launch(repo_root / 'config' / 'f1tenth.yaml')
    nodes = [a for a in actions if type(a).__name__ == 'Node']
    assert len(nodes) == 1
    assert nodes[0].kwargs['package'] == plan.package
    assert nodes[0].kwargs['executable'] == plan.executable
    assert nodes[0].kwargs['parameters'] == [plan.containers[0].parameters]
    assert nodes[0].kwargs['ros_arguments'] == []  # keeps its own name
    log = next(a for a in actions if type(a).__name__ == 'LogInfo')
    assert all(node.name in log.kwargs['msg'] for node in plan.nodes)
    assert not [a for a in actions if type(a).__name__ == 'ExecuteProcess']


def test_launch_file_starts_a_container_per_lane(repo_root: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    install_stand_ins(monkeypatch, share=repo_root)
    config = process_per_lane_config(tmp_path)
    actions = run_launch_file(repo_root, {'config': str(config)})
    nodes = [a for a in actions if type(a).__name__ == 'Node']
    assert [(n.kwargs['ros_arguments'], n.kwargs['parameters']) for n in nodes] == [
        (['-r', f'perception_container:__node:={c.name}'], [c.parameters])
        for c in plan_launch(config).containers]
    assert len(nodes) == 2


def test_launch_file_plays_a_bag_when_given(repo_root: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    install_stand_ins(monkeypatch, share=repo_root)
    bag = tmp_path / 'drive'
    actions = run_launch_file(repo_root, {'bag': str(bag), 'rate': '0.5'})
    player = next(a for a in actions if type(a).__name__ == 'ExecuteProcess')
    assert player.kwargs['cmd'] == ['ros2', 'bag', 'play', str(bag), '--rate', '0.5']


def test_launch_file_refuses_an_invalid_config(repo_root: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    install_stand_ins(monkeypatch, share=repo_root)
    broken = tmp_path / 'broken.yaml'
    broken.write_text('model_dir: x\nlanes: {}\ntasks: []\n')
    with pytest.raises(ConfigError, match=r'broken.yaml: lanes = \{\} must map lane names'):
        run_launch_file(repo_root, {'config': str(broken)})
