"""What a bring-up starts, derived from the config alone.

Both launch/f1tenth.launch.py (real ROS 2 installs) and ``edge-perception launch`` (in-process,
where launch_ros is not installable) start exactly the processes and nodes planned here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_perception.core.config import load_config

PACKAGE = 'edge_perception'
CONTAINER_EXECUTABLE = 'perception_container'
CONTAINER_NAME = 'perception_container'


@dataclass(frozen=True)
class NodeSpec:
    """One node the container hosts: its ROS name, task and topics."""

    name: str
    task: str
    input_topic: str
    output_topic: str


@dataclass(frozen=True)
class ContainerSpec:
    """One container process: the lane it hosts (None: every lane) and its task nodes."""

    name: str
    lane: str | None
    nodes: tuple[NodeSpec, ...]
    config_file: Path

    @property
    def parameters(self) -> dict[str, str]:
        return {'config_file': str(self.config_file), 'lane': self.lane or ''}

    @property
    def ros_arguments(self) -> list[str]:
        """Renames the container's own node only (a plain ``__node:=`` remap, which a launch
        file's ``name=`` adds, would rename every task node of the process too)."""
        if self.name == CONTAINER_NAME:
            return []
        return ['-r', f'{CONTAINER_NAME}:__node:={self.name}']

    def command_line_arguments(self, extra: dict[str, str] | None = None) -> list[str]:
        """ROS arguments that start this container from a command line, with ``extra``
        parameters on top."""
        parameters = [arg for key, value in {**self.parameters, **(extra or {})}.items()
                      if value  # '' = the parameter's default
                      for arg in ('-p', f'{key}:={value}')]
        return ['--ros-args', *self.ros_arguments, *parameters]


@dataclass(frozen=True)
class LaunchPlan:
    """The container processes with their task nodes, and an optional bag to play."""

    package: str
    executable: str
    containers: tuple[ContainerSpec, ...]
    bag: Path | None

    @property
    def nodes(self) -> tuple[NodeSpec, ...]:
        return tuple(node for container in self.containers for node in container.nodes)


def container_name(lane: str | None) -> str:
    """The container's own node name: one per process, so each lane's is its own."""
    return CONTAINER_NAME if lane is None else f'{CONTAINER_NAME}_{lane}'


def plan_launch(config_file: str | Path, *, bag: str | Path | None = None) -> LaunchPlan:
    """Validate ``config_file`` and list what the bring-up starts: one container process, or
    one per lane with ``process_per_lane``.

    :raises ConfigError: if the config is invalid.
    """
    config = load_config(config_file)
    containers = tuple(
        ContainerSpec(
            name=container_name(lane), lane=lane, config_file=config.source,
            nodes=tuple(NodeSpec(name=task.node, task=task.name, input_topic=task.input_topic,
                                 output_topic=task.output_topic)
                        for task in config.tasks if lane is None or task.lane == lane))
        for lane in config.container_lanes())
    return LaunchPlan(package=PACKAGE, executable=CONTAINER_EXECUTABLE, containers=containers,
                      bag=Path(bag).resolve() if bag else None)
