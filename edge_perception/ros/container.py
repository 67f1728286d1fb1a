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

import dataclasses
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
    TaskVariants,
    VariantAdapter,
    VariantOption,
    choose_variants,
)
from edge_perception.core.config import PerceptionConfig, default_config_path, load_config
from edge_perception.core.deadline_miss import DeadlineMissEvent
from edge_perception.core.health import NodeCounts
from edge_perception.core.input_watchdog import InputWatchdog
from edge_perception.core.jobs import JobOutcome
from edge_perception.core.launch_plan import CONTAINER_NAME, container_name
from edge_perception.core.scheduler import DeadlineScheduler
from edge_perception.core.scheduling import padded
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
from edge_perception.ros.task_node import PerceptionTaskNode, camera_qos
from edge_perception.runtime.manifest import ModelLoadError
from edge_perception.runtime.task_models import Placement, TaskModels
from edge_perception.runtime.tvm.store import ModelStore
from edge_perception.runtime.tvm.target import cuda_available
from edge_perception.synthetic.scenes import generate_frame
from edge_perception.tasks.frames import BgrImage, Frame
from edge_perception.tasks.pipelines import Infer, TaskPipeline

PROFILE_RUNS = 3


def busy_frame() -> BgrImage:
    """A synthetic frame with many objects: the worst case of the post-processing stages."""
    return max((generate_frame('demo', i) for i in range(20)), key=lambda f: len(f.objects)).image


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
        if only_task is not None:
            config = dataclasses.replace(config, tasks=(config.task(only_task),))
        if only_lane is not None:
            config = config.for_lane(only_lane)
            # The lane's process runs at its lane's priority: the thread that builds the
            # container spins it, and the lane must never wait for the GIL held by its own
            # spinning thread while the OS runs something of lower priority in its place.
            configure_current_thread(lane=f'{only_lane} (spinning thread)',
                                     rt_priority=config.lanes[0].rt_priority,
                                     nice=config.lanes[0].nice, cpus=())
        self.config = config
        self.node = node or LeanNode(container_name(only_lane), context=context)
        self.log = self.node.get_logger()
        self.store = ModelStore.of(config.model_dir)
        self.adapter = message_adapter()
        self.lane_devices = {lane.name: self._device(lane.name, lane.device)
                             for lane in config.lanes}
        lanes = {lane.name: lane for lane in config.lanes}
        placements = {name: Placement(self.lane_devices[name], lane.threads)
                      for name, lane in lanes.items()}
        # A task whose models cannot be loaded is reported (ERROR on /diagnostics) and left
        # out; the other tasks run.
        self.failures: dict[str, str] = {}
        self.frames = SharedFrames()
        self.nodes = []
        for task in config.tasks:
            try:
                models = TaskModels(task, self.store, lanes=placements,
                                    batch_sizes=range(1, lanes[task.lane].max_batch + 1))
            except ModelLoadError as err:
                self.failures[task.name] = str(err)
                self.log.error(f'task {task.name} disabled: {err}')
                continue
            self.nodes.append(PerceptionTaskNode(task=task, models=models, adapter=self.adapter,
                                                 frames=self.frames, context=context,
                                                 subscribe=baseline is not None,
                                                 input_qos=config.input_qos(task.input_topic)))
        self._by_task = {node.task.name: node for node in self.nodes}
        self.scheduler = DeadlineScheduler(config, devices=self.lane_devices,
                                           on_outcome=self._on_outcome)
        self.executor: Executor
        if baseline is None:
            self.executor = DeadlineExecutor(self.scheduler, context=context)
            self._subscribe_cameras(self.executor)
        else:
            self.executor = baseline(context=context)
        for any_node in (self.node, *self.nodes):
            self.executor.add_node(any_node)
        self.adapter_policy: VariantAdapter | None = None
        if select_variants or adapt_variants:
            self.variant_table = self._profile_variants()
            if select_variants:
                self._select_variants()
            self.adapter_policy = VariantAdapter(tasks=self.variant_table,
                                                 current=self.variants())
        if adapt_variants:
            self.node.create_timer(1.0, self.adapt)
        self.diagnostics = self.node.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.misses = self.node.create_publisher(self.adapter.deadline_miss_type(),
                                                 DEADLINE_MISS_TOPIC, 50)
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
                # The executor releases jobs instead of calling this callback.
                self.node.create_subscription(Image, topic, lambda msg: None,
                                              camera_qos(self.config.input_qos(topic)),
                                              callback_group=groups[topic])
            executor.assign(groups[topic], task=task_node.task.name,
                            stages_for=task_node.job_stages)

    def spin_once(self) -> None:
        self.executor.spin_once(timeout_sec=0.05)

    def _device(self, lane: str, device: str) -> str:
        if device == 'cuda' and not cuda_available():
            self.log.warning(f'lane {lane}: no CUDA device, falling back to the CPU')
            return 'cpu'
        return device

    def variants(self) -> dict[str, str]:
        return {name: node.models.variant for name, node in self._by_task.items()}

    def _profile_variants(self) -> dict[str, TaskVariants]:
        """Stage times of every variant on a busy synthetic frame, and their accuracy."""
        frame = busy_frame()
        table = {}
        for name, task_node in self._by_task.items():
            task, models = task_node.task, task_node.models
            start_variant = models.variant
            options = []
            for variant in task.variants:
                models.variant = variant
                stage_ns = profile_stages(task_node.pipeline, models, frame)
                metrics = {model: self.store.manifest.variant(model, variant).metrics
                           for model in task.models}
                options.append(VariantOption(variant, task_node.pipeline.accuracy(metrics),
                                             padded(stage_ns, self.config.wcet_margin)))
            models.variant = start_variant
            table[name] = TaskVariants(name, task.lane, task.period_ns, task.deadline_ns,
                                       tuple(options))
        return table

    def _select_variants(self) -> None:
        selection = choose_variants(list(self.variant_table.values()))
        for task, variant in selection.variants.items():
            self._switch(task, variant, 'start-up selection by response-time analysis')
        verdict = 'schedulable' if selection.schedulable else 'NOT schedulable even so'
        self.log.info(f'variants {selection.variants}: {verdict} (profiled on this machine)')

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
        for switch in self.adapter_policy.decide(self.scheduler.take_windows()):
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
        header = Header(stamp=time_from_ns(time.time_ns()))
        now = time.monotonic_ns()
        inputs = {node.task.name: node.watchdog.verdict(now) for node in self.nodes
                  if node.watchdog is not None}
        tasks = self.scheduler.task_report(variants=self.variants(), failures=self.failures,
                                           inputs=inputs, nodes=self._node_counts(), now_ns=now)
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
        return {task: NodeCounts(node.frames_received, node.frames_published,
                                 dict(node.bad_frames))
                for task, node in self._by_task.items()}

    def destroy(self) -> None:
        self.executor.shutdown()
        for node in self.nodes:
            node.destroy_node()
        self.node.destroy_node()


def profile_stages(pipeline: TaskPipeline, infer: Infer, frame: BgrImage, *,
                   runs: int = PROFILE_RUNS) -> tuple[int, ...]:
    """Per-stage maxima (ns) of ``runs`` runs of ``pipeline`` on ``frame``, after one untimed
    run; a stage is one request plus the code up to the next (what a lane runs without
    preemption)."""
    worst: list[int] = []
    # The first call loads the module (from disk, or a fresh build) and faults its pages in:
    # one such outlier made a test's "3x the worst response" deadline 735 ms instead of ~60.
    for warm_up in (True, *([False] * runs)):
        stages, times = pipeline.stages(Frame(frame)), []  # its own Frame: no cached input
        try:
            request = next(stages)
            while True:
                start = time.perf_counter_ns()
                try:
                    request = stages.send(infer(request.model, request.inputs))
                finally:
                    times.append(time.perf_counter_ns() - start)
        except StopIteration:
            pass
        if not warm_up:
            worst = times if len(worst) != len(times) else [max(a, b) for a, b in
                                                              zip(worst, times, strict=True)]
    return tuple(worst)


def run_container(args: list[str] | None = None, *, only_task: str | None = None) -> None:
    """Init rclpy, read the container's parameters (``config_file``; ``lane``: host that lane
    alone, '' = every lane; ``select_variants``, ``adapt_variants``), spin every node."""
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
        container = PerceptionContainer(
            load_config(config_file), only_task=only_task, only_lane=lane or None, node=owner,
            select_variants=parameter('select_variants', True,
                                      'Choose variants by analysis at start-up'),
            adapt_variants=parameter('adapt_variants', True, 'Adapt variants to misses'))
        container.executor.spin_once(timeout_sec=0)  # starts the lanes
        # Said once the lanes run: launch tests and tools wait for this line.
        owner.get_logger().info(
            f'hosting {", ".join(n.get_name() for n in container.nodes)} from {config_file}')
        container.executor.spin()
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
