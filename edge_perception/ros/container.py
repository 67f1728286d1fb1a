"""The perception container: every task node of a config (or of one lane) in one process,
one executor.

One :class:`~edge_perception.runtime.tvm.store.ModelStore` holds the compiled TVM modules of
all tasks (the shared detector is compiled and loaded once). The
:class:`~edge_perception.ros.deadline_executor.DeadlineExecutor` runs the tasks on their
lanes in deadline-monotonic order. At start-up every variant of every task is profiled and
the most accurate combination the response-time analysis accepts is chosen (RT-mDL); at run
time, variants follow the miss ratio. The container publishes /diagnostics at 1 Hz and one
message per deadline miss on /edge_perception/deadline_misses.
"""

from __future__ import annotations

import gc
import sys
import time
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy._rclpy_pybind11 import RCLError
from rclpy.callback_groups import CallbackGroup, MutuallyExclusiveCallbackGroup
from rclpy.context import Context
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from edge_perception.core.adaptation import (
    VariantAdapter,
)
from edge_perception.core.config import (
    ConfigError,
    PerceptionConfig,
    default_config_path,
    load_config,
)
from edge_perception.core.deadline_miss import DeadlineMissEvent
from edge_perception.core.health import NodeCounts
from edge_perception.core.input_watchdog import InputWatchdog
from edge_perception.core.jobs import JobOutcome
from edge_perception.core.launch_plan import CONTAINER_NAME, container_name
from edge_perception.core.thread_setup import configure_current_thread
from edge_perception.ros.deadline_executor import DeadlineExecutor
from edge_perception.ros.diagnostics import diagnostics_message
from edge_perception.ros.frame_sharing import SharedFrames
from edge_perception.ros.lean_node import LeanNode
from edge_perception.ros.message_adapter import (
    DEADLINE_MISS_TOPIC,
    message_adapter,
    time_from_ns,
)
from edge_perception.ros.stock_executors import STOCK_EXECUTORS, PriorityExecutor
from edge_perception.ros.subscriber_types import SubscriberTypeCheck
from edge_perception.ros.task_node import PerceptionTaskNode, camera_qos, subscribed_line
from edge_perception.runtime.bring_up import bring_up


class PerceptionContainer:
    """Creates one :class:`PerceptionTaskNode` per configured task (or only ``only_task``, or
    only the tasks of ``only_lane``) and the executor that spins them all.

    :param node: the container's own node (parameters, diagnostics); created when None.
    :param select_variants: profile variants at start-up and pick them by analysis.
    :param baseline: spin with this stock rclpy executor instead (benchmarks compare them);
        every callback then runs whole, in the executor's own order.
    """

    def __init__(self, config: PerceptionConfig, *, context: Context | None = None,
                 only_task: str | None = None, only_lane: str | None = None,
                 node: Node | None = None,
                 select_variants: bool = True, adapt_variants: bool = True,
                 baseline: type[Executor] | None = None) -> None:
        self.node = node or LeanNode(container_name(only_lane), context=context)
        self.log = self.node.get_logger()
        self.runtime = bring_up(config, log=self.log, only_task=only_task, only_lane=only_lane,
                                profile=select_variants or adapt_variants,
                                select_variants=select_variants, on_outcome=self._on_outcome)
        self.config = config = self.runtime.config
        self.scheduler = self.runtime.scheduler
        self.store = self.runtime.store
        self.failures = self.runtime.failures
        self.lane_devices = self.runtime.lane_devices
        self.adapter = message_adapter()
        self.frames = SharedFrames()
        self.nodes = [PerceptionTaskNode(task=config.task(task), models=models,
                                         adapter=self.adapter, frames=self.frames,
                                         context=context, subscribe=baseline is not None,
                                         input_qos=config.input_qos(config.task(task).input_topic))
                      for task, models in self.runtime.models.items()]
        self._by_task = {node.task.name: node for node in self.nodes}
        self.executor: Executor
        if baseline is None:
            self.executor = DeadlineExecutor(self.scheduler, context=context)
            self._subscribe_cameras(self.executor)
        else:
            self.executor = baseline(context=context)
        for any_node in (self.node, *self.nodes):
            self.executor.add_node(any_node)
        if isinstance(self.executor, PriorityExecutor) and self.nodes:
            # As an engineer would mark it: the node of this process's most urgent task.
            urgent = min(self.nodes, key=lambda n: self.scheduler.priorities[n.task.name])
            self.executor.add_high_priority_node(urgent)
            self.log.info(f'priority executor: {urgent.get_name()} on the high-priority '
                          'threads, every other callback on one thread')
        self.adapter_policy: VariantAdapter | None = None
        if self.runtime.variant_table is not None:
            self.adapter_policy = VariantAdapter(tasks=self.runtime.variant_table,
                                                 current=self.variants())
        if adapt_variants:
            self.node.create_timer(1.0, self.adapt)
        self.diagnostics = self.node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.misses = self.node.create_publisher(self.adapter.deadline_miss_type(),
                                                 DEADLINE_MISS_TOPIC, 50)
        self.subscriber_types = SubscriberTypeCheck(self.node, {
            DEADLINE_MISS_TOPIC: self.adapter.deadline_miss_type(),
            **{n.task.output_topic: n.publisher.msg_type for n in self.nodes}})
        self.node.create_timer(1.0, self.publish_diagnostics)
        for line in self.scheduler.setup_log:
            self.log.info(line)
        watch = config.input_watchdog
        for task_node in self.nodes:
            task_node.watchdog = InputWatchdog(
                task_node.task.period_ns, warn_periods=watch.warn_periods,
                error_periods=watch.error_periods, started_ns=time.monotonic_ns())
        # Start-up leaves ~300k long-lived objects (models, message types, profiles). A full
        # collection over them held the GIL, so every lane, for ~150 ms (measured in the soak
        # workload): move them out of the collector's reach.
        gc.collect()
        gc.freeze()

    def _subscribe_cameras(self, executor: DeadlineExecutor) -> None:
        """One subscription per input topic, feeding every task node on it.

        With a subscription per node, DDS hands each its own copy of every frame, and the
        spinning thread took, converted and compared each copy: in the soak workload (21
        tasks on one camera) that thread used a whole core, time the lanes then waited for
        the GIL.
        """
        groups: dict[str, CallbackGroup] = {}
        for task_node in self.nodes:
            topic = task_node.task.input_topic
            if topic not in groups:
                groups[topic] = MutuallyExclusiveCallbackGroup()
                # The executor releases jobs instead of calling this callback; it takes the
                # frames serialised and deserialises only those that release a job.
                qos = self.config.input_qos(topic)
                self.node.create_subscription(Image, topic, lambda msg: None, camera_qos(qos),
                                              callback_group=groups[topic], raw=True)
                self.log.info(subscribed_line(topic, qos))
            executor.assign(groups[topic], task=task_node.task.name,
                            stages_for=task_node.job_stages)

    def spin_once(self) -> None:
        self.executor.spin_once(timeout_sec=0.05)

    def variants(self) -> dict[str, str]:
        return {name: node.models.variant for name, node in self._by_task.items()}

    def _switch(self, task: str, variant: str, reason: str) -> None:
        node = self._by_task[task]
        if node.models.variant == variant:
            return
        self.log.info(f'task {task}: variant {node.models.variant} -> {variant} ({reason})')
        node.set_parameters([Parameter('variant', value=variant)])
        self.scheduler.forget_timing(task)

    def adapt(self) -> None:
        """One adaptation window: switch variants on the miss ratios since the last call."""
        if self.adapter_policy is None:
            raise RuntimeError('adapt() needs a container made with adapt_variants=True')
        self.adapter_policy.current.update(self.variants())  # follow manual changes too
        decisions = self.adapter_policy.decide(self.scheduler.take_windows(),
                                               self.scheduler.typical_exec_ns())
        for switch in decisions:
            self._switch(switch.task, switch.new, switch.reason)

    def _on_outcome(self, outcome: JobOutcome) -> None:
        """Runs on lane threads: publish each miss as an event (publishing is thread-safe)."""
        if not outcome.missed:
            return
        task = self.scheduler.tasks[outcome.task]
        # Release times are monotonic; the event carries wall-clock time for tools.
        wall_release = time.time_ns() - (self.scheduler.clock.now_ns() - outcome.release_ns)
        self._publish(self.misses, self.adapter.deadline_miss(DeadlineMissEvent(
            task=outcome.task, lane=task.lane, variant=self._by_task[outcome.task].models.variant,
            job_id=outcome.job_id, release_ns=wall_release, deadline_ns=task.deadline_ns,
            response_time_ns=outcome.response_ns, dropped=outcome.dropped is not None)))

    def publish_diagnostics(self) -> None:
        self.subscriber_types.check()
        header = Header(stamp=time_from_ns(time.time_ns()))
        now = time.monotonic_ns()
        inputs = {node.task.name: node.watchdog.verdict(now) for node in self.nodes
                  if node.watchdog is not None}
        tasks = self.scheduler.task_report(variants=self.variants(), failures=self.failures,
                                           inputs=inputs, nodes=self._node_counts(),
                                           engines=self.runtime.task_engines(),
                                           untuned=self.runtime.untuned(), now_ns=now)
        self._publish(self.diagnostics, diagnostics_message(
            [*tasks, *self.scheduler.lane_report()], header=header))

    def _publish(self, publisher: Publisher[Any], msg: Any) -> None:
        """Publish, unless shutdown (SIGINT/SIGTERM) already invalidated the context: a timer
        or lane thread finishing its last piece of work then has nowhere to publish to."""
        try:
            publisher.publish(msg)
        except RCLError:
            if self.node.context.ok():
                raise

    def _node_counts(self) -> dict[str, NodeCounts]:
        mismatched = self.subscriber_types.mismatched
        return {task: NodeCounts(node.frames_received, node.frames_published,
                                 dict(node.bad_frames), mismatched[node.task.output_topic])
                for task, node in self._by_task.items()}

    def destroy(self) -> None:
        self.executor.shutdown()
        for node in self.nodes:
            node.destroy_node()
        self.node.destroy_node()


def run_container(args: list[str] | None = None, *, only_task: str | None = None) -> None:
    """Init rclpy, read the container's parameters (``config_file``; ``lane``: host that lane
    alone, '' = every lane; ``select_variants``, ``adapt_variants``; ``executor``: 'deadline'
    (ours) or a stock one of :func:`stock_executors`), spin every node."""
    rclpy.init(args=args)
    # A lane's container is renamed by a remap rule on its command line (ContainerSpec).
    owner = LeanNode(CONTAINER_NAME if only_task is None else f'{only_task}_host')
    container: PerceptionContainer | None = None
    try:
        def parameter(name: str, default: Any, description: str) -> Any:
            return owner.declare_parameter(
                name, default, ParameterDescriptor(description=description, read_only=True),
            ).value

        config_file: str = parameter('config_file', str(default_config_path()),
                                     'Bring-up YAML (tasks, lanes, models)')
        lane: str = parameter('lane', '', 'Host only the tasks of this lane (process_per_lane)')
        executor: str = parameter('executor', 'deadline',
                                  'deadline (ours) or a stock rclpy executor to compare: '
                                  + ', '.join(STOCK_EXECUTORS))
        stock = STOCK_EXECUTORS
        if executor != 'deadline' and executor not in stock:
            raise ConfigError(f"parameter executor: {executor!r} is not 'deadline' or one of "
                              f'{list(stock)}')
        container = PerceptionContainer(
            load_config(config_file), only_task=only_task, only_lane=lane or None, node=owner,
            select_variants=parameter('select_variants', True,
                                      'Choose variants by analysis at start-up'),
            adapt_variants=parameter('adapt_variants', True, 'Adapt variants to misses'),
            baseline=stock.get(executor))
        if stock.get(executor) is not None and lane:
            # A stock executor runs every callback on the spinning thread: it gets the lane's
            # cores too, as our lane thread does (its priority and nice it already has).
            lane_config = container.config.lanes[0]
            for line in configure_current_thread(lane=f'{lane} (stock {executor})',
                                                 rt_priority=lane_config.rt_priority,
                                                 nice=lane_config.nice, cpus=lane_config.cpus):
                owner.get_logger().info(line)
        container.executor.spin_once(timeout_sec=0)  # starts the lanes
        # Said once the lanes run: launch tests and tools wait for this line.
        owner.get_logger().info(
            f'hosting {", ".join(n.get_name() for n in container.nodes)} from {config_file}')
        if executor == 'deadline':
            container.executor.spin()
        else:  # rclpy's EventsExecutor.spin() blocked without a timeout here: drive it so
            while owner.context.ok():
                container.executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if owner.context.ok():
            raise
        # Stopped (SIGINT/SIGTERM) while starting: what failed, failed for want of a context.
    finally:
        if container is not None:
            container.destroy()
        else:
            owner.destroy_node()
        rclpy.try_shutdown()


def main(args: list[str] | None = None) -> None:
    """``ros2 run edge_perception perception_container``: every configured task."""
    run_container(args if args is not None else sys.argv)


def traffic_light_main(args: list[str] | None = None) -> None:
    """``ros2 run edge_perception traffic_light_detector``: that task alone."""
    run_container(args if args is not None else sys.argv, only_task='traffic_light')


def sign_main(args: list[str] | None = None) -> None:
    """``ros2 run edge_perception sign_recognizer``: that task alone."""
    run_container(args if args is not None else sys.argv, only_task='traffic_sign')


if __name__ == '__main__':
    main()
