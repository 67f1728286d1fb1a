"""The perception container: every task node of a config in one process, sharing the models.

One :class:`~edge_perception.runtime.tvm_engine.ModelStore` holds the compiled TVM modules of
all tasks, so a model used by two tasks (the shared detector) is compiled and loaded once.
"""

from __future__ import annotations

import sys

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from edge_perception.core.config import PerceptionConfig, default_config_path, load_config
from edge_perception.core.launch_plan import CONTAINER_NAME
from edge_perception.ros.message_adapter import message_adapter
from edge_perception.ros.task_node import PerceptionTaskNode
from edge_perception.runtime.manifest import Manifest
from edge_perception.runtime.task_models import TaskModels
from edge_perception.runtime.tvm_engine import ModelStore, cuda_available, default_cache_dir


class PerceptionContainer:
    """Creates one :class:`PerceptionTaskNode` per configured task (or only ``only_task``)."""

    def __init__(self, config: PerceptionConfig, *, context: Context | None = None,
                 only_task: str | None = None, log: Node | None = None) -> None:
        self.config = config
        self.store = ModelStore(Manifest.load(config.model_dir), cache_dir=default_cache_dir())
        adapter = message_adapter()
        lanes = {lane.name: lane for lane in config.lanes}
        tasks = [config.task(only_task)] if only_task else list(config.tasks)
        self.lane_devices: dict[str, str] = {}
        for lane in config.lanes:
            device = lane.device
            if device == 'cuda' and not cuda_available():
                device = 'cpu'
                if log is not None:
                    log.get_logger().warning(
                        f'lane {lane.name}: no CUDA device, falling back to the CPU')
            self.lane_devices[lane.name] = device
        self.nodes = [
            PerceptionTaskNode(
                task=task,
                models=TaskModels(task, self.store, device=self.lane_devices[task.lane],
                                  threads=lanes[task.lane].threads),
                adapter=adapter,
                context=context,
            )
            for task in tasks
        ]

    def destroy(self) -> None:
        for node in self.nodes:
            node.destroy_node()


def run_container(args: list[str] | None = None, *, only_task: str | None = None) -> None:
    """Init rclpy, read ``config_file`` from the container's parameters, spin every node."""
    rclpy.init(args=args)
    owner = Node(CONTAINER_NAME if only_task is None else f'{only_task}_host')
    container: PerceptionContainer | None = None
    try:
        config_file: str = owner.declare_parameter(
            'config_file', str(default_config_path()),
            ParameterDescriptor(description='Bring-up YAML (tasks, lanes, models)',
                                read_only=True),
        ).value
        container = PerceptionContainer(load_config(config_file), only_task=only_task, log=owner)
        executor = SingleThreadedExecutor()
        for node in (owner, *container.nodes):
            executor.add_node(node)
        owner.get_logger().info(
            f'hosting {", ".join(n.get_name() for n in container.nodes)} from {config_file}')
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if container is not None:
            container.destroy()
        owner.destroy_node()
        rclpy.try_shutdown()


def main(args: list[str] | None = None) -> None:
    run_container(args if args is not None else sys.argv)
