"""Bring up edge_perception on an F1TENTH car (real ROS 2 installs with launch_ros).

    ros2 launch edge_perception f1tenth.launch.py [config:=FILE] [bag:=BAG] [rate:=1.0]

The node list comes from edge_perception.core.launch_plan, the same helper that
``edge-perception launch`` uses, so both start exactly the same containers and task nodes; a
container that dies is restarted after a second here, as ``edge-perception launch`` does.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from edge_perception.core.launch_plan import plan_launch


def _bring_up(context, *args, **kwargs):
    plan = plan_launch(
        LaunchConfiguration('config').perform(context),
        bag=LaunchConfiguration('bag').perform(context) or None,
    )
    actions = [LogInfo(msg=f'edge_perception: hosting {", ".join(n.name for n in plan.nodes)}')]
    actions.extend(
        Node(
            package=plan.package,
            executable=plan.executable,
            parameters=[container.parameters],
            ros_arguments=container.ros_arguments,  # names the container node alone
            output='screen',
            emulate_tty=True,
            respawn=True,
            respawn_delay=1.0,
        )
        for container in plan.containers  # one, or one per lane (process_per_lane)
    )
    if plan.bag is not None:
        rate = LaunchConfiguration('rate').perform(context)
        actions.append(
            ExecuteProcess(cmd=['ros2', 'bag', 'play', str(plan.bag), '--rate', rate],
                           output='screen')
        )
    return actions


def generate_launch_description():
    default_config = os.path.join(
        get_package_share_directory('edge_perception'), 'config', 'f1tenth.yaml')
    return LaunchDescription([
        DeclareLaunchArgument('config', default_value=default_config,
                              description='Bring-up YAML: tasks, lanes, models'),
        DeclareLaunchArgument('bag', default_value='',
                              description='rosbag2 to replay into the graph (empty: live camera)'),
        DeclareLaunchArgument('rate', default_value='1.0', description='Bag playback rate'),
        OpaqueFunction(function=_bring_up),
    ])
