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
class LaunchPlan:
    """The container process with its task nodes, and an optional bag to play."""

    package: str
    executable: str
    container_name: str
    config_file: Path
    nodes: tuple[NodeSpec, ...]
    bag: Path | None

    @property
    def container_parameters(self) -> dict[str, str]:
        return {'config_file': str(self.config_file)}


def plan_launch(config_file: str | Path, *, bag: str | Path | None = None) -> LaunchPlan:
    """Validate ``config_file`` and list what the bring-up starts.

    :raises ConfigError: if the config is invalid.
    """
    config = load_config(config_file)
    nodes = tuple(
        NodeSpec(
            name=task.node,
            task=task.name,
            input_topic=task.input_topic,
            output_topic=task.output_topic,
        )
        for task in config.tasks
    )
    return LaunchPlan(
        package=PACKAGE,
        executable=CONTAINER_EXECUTABLE,
        container_name=CONTAINER_NAME,
        config_file=config.source,
        nodes=nodes,
        bag=Path(bag).resolve() if bag else None,
    )
