"""One perception task as a ROS 2 node: camera Image in, detections out.

The node owns no model. It decodes the image (once per message for all the container's
nodes on that topic: :class:`SharedFrames`), runs its task pipeline with the ``infer``
callable it was given (the container routes it to the TVM module of the task's current
variant) and publishes the detections through the message adapter with the input header.
Under the DeadlineExecutor the pipeline runs stage by stage on the task's lane, and the
container subscribes to the camera for all its nodes at once (``subscribe=False``).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, ParameterDescriptor, SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.context import Context
from rclpy.parameter import Parameter
from rclpy.publisher import Publisher
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from edge_perception.core.config import InputQos, TaskConfig
from edge_perception.core.input_watchdog import InputWatchdog
from edge_perception.core.jobs import Stages, run_to_completion
from edge_perception.core.stamp_gate import StampGate
from edge_perception.ros.frame_sharing import SharedFrames
from edge_perception.ros.image_conversion import ImageDecodeError, encode_bgr8
from edge_perception.ros.lean_node import LeanNode
from edge_perception.ros.message_adapter import MessageAdapter, markers
from edge_perception.ros.taken_message import TakenMessage
from edge_perception.runtime.task_models import TaskModels
from edge_perception.tasks.annotate import annotate
from edge_perception.tasks.frames import Frame
from edge_perception.tasks.pipelines import TaskPipeline


def camera_qos(qos: InputQos) -> QoSProfile:
    """The subscription QoS of a camera topic as the config states it (see InputQos)."""
    reliability = (ReliabilityPolicy.RELIABLE if qos.reliability == 'reliable'
                   else ReliabilityPolicy.BEST_EFFORT)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=qos.depth,
                      reliability=reliability)


def subscribed_line(topic: str, qos: InputQos) -> str:
    """What a camera subscription is logged as: the graph cannot tell its depth to anyone."""
    return f'subscribed to {topic}: {qos.reliability}, KEEP_LAST {qos.depth}'


class PerceptionTaskNode(LeanNode):
    """Runs one task's pipeline on every frame of its input topic.

    Parameters (declared with type, range and description):
    ``variant`` (string): the model variant in use; setting it switches models live.
    ``score_threshold`` (double, 0..1): minimum detection score that is published.
    ``publish_debug_image`` (bool): also publish annotated frames on ``<output>/debug_image``.

    ``subscribe=False``: no subscription of its own; whoever takes the camera's messages
    hands them to :meth:`job_stages`.
    """

    def __init__(self, *, task: TaskConfig, models: TaskModels, adapter: MessageAdapter,
                 frames: SharedFrames | None = None, context: Context | None = None,
                 subscribe: bool = True, input_qos: InputQos | None = None) -> None:
        super().__init__(task.node, context=context)
        self.task = task
        self.frames = frames or SharedFrames()
        self.models = models
        self.pipeline: TaskPipeline = models.pipeline
        self.adapter = adapter
        self.frames_received = 0
        self.frames_published = 0
        # Set by the container once it is up: silence before that is start-up, not a camera.
        self.watchdog: InputWatchdog | None = None
        self.bad_frames: Counter[str] = Counter()
        self.stamps = StampGate()
        self.declare_parameter(
            'variant', models.variant,  # chosen at bring-up
            ParameterDescriptor(description='Model variant in use; one of: '
                                + ', '.join(task.variants)))
        self.declare_parameter(
            'score_threshold', self.pipeline.threshold,
            ParameterDescriptor(description='Minimum score of a published detection',
                                floating_point_range=[FloatingPointRange(
                                    from_value=0.0, to_value=1.0, step=0.0)]))
        self.debug_images: bool = self.declare_parameter(
            'publish_debug_image', False,
            ParameterDescriptor(description='Publish frames with the detections drawn on '
                                f'{task.output_topic}/debug_image')).value
        self.debug_publisher = self.create_publisher(Image, f'{task.output_topic}/debug_image', 2)
        self.draw_markers: bool = self.declare_parameter(
            'publish_markers', False,
            ParameterDescriptor(description='Publish the detections for rviz (boxes and labels) '
                                f'on {task.output_topic}/markers')).value
        self.marker_publisher = self.create_publisher(MarkerArray, f'{task.output_topic}/markers',
                                                      2)
        self.add_on_set_parameters_callback(self._on_parameters)
        self.publisher: Publisher[Any] = self.create_publisher(
            adapter.detections_type(self.pipeline.output_kind), task.output_topic, 10)
        if subscribe:
            qos = input_qos or InputQos()
            self.create_subscription(Image, task.input_topic, self.on_image, camera_qos(qos),
                                     callback_group=MutuallyExclusiveCallbackGroup())
            self.get_logger().info(subscribed_line(task.input_topic, qos))

    def _on_parameters(self, parameters: Sequence[Parameter[Any]]) -> SetParametersResult:
        for parameter in parameters:
            if parameter.name == 'variant' and parameter.value not in self.task.variants:
                return SetParametersResult(
                    successful=False,
                    reason=f'variant {parameter.value!r} is not one of {list(self.task.variants)}')
        for parameter in parameters:
            if parameter.name == 'variant' and parameter.value != self.models.variant:
                self.get_logger().info(f'switching variant {self.models.variant} -> '
                                       f'{parameter.value}')
                self.models.variant = parameter.value
            elif parameter.name == 'score_threshold':
                self.pipeline.threshold = float(parameter.value)
            elif parameter.name == 'publish_debug_image':
                self.debug_images = bool(parameter.value)
            elif parameter.name == 'publish_markers':
                self.draw_markers = bool(parameter.value)
        return SetParametersResult(successful=True)

    def job_stages(self, taken: TakenMessage,
                   due: Callable[[], bool] = lambda: True) -> Stages | None:
        """The staged work of the ``taken`` message (inference, then publishing), decoded
        now; None for a bad frame, which is counted per reason and costs no job, and for a
        frame that is not ``due()`` (inside the task's period, or superseded), which is
        checked from its bytes but neither deserialised nor decoded."""
        self.frames_received += 1
        if self.watchdog is not None:
            self.watchdog.frame(time.monotonic_ns())
        try:
            stamp_ns = taken.stamp_ns
            reason = self.stamps.check(stamp_ns, self.get_clock().now().nanoseconds)
            if reason is not None:
                self.bad_frames[reason] += 1
                sec, nanosec = divmod(stamp_ns, 1_000_000_000)
                self.get_logger().warning(f'dropped frame: {reason} ({sec}.{nanosec:09d})',
                                          throttle_duration_sec=5.0)
                return None
            taken.check_image()  # every frame: a bad one is counted even if never run
            if not due():
                return None
            msg = taken.message()
            frame = self.frames.frame(self.task.input_topic, msg)
        except ImageDecodeError as err:
            self.bad_frames[err.reason] += 1
            self.get_logger().warning(f'dropped frame: {err}', throttle_duration_sec=5.0)
            return None
        return self._work(frame, msg.header)

    def _work(self, frame: Frame, header: Header) -> Stages:
        """The job: each model request goes to the lane (bound to the current variant)."""
        variant = self.models.variant
        detections = yield from self.models.drive(self.pipeline.stages(frame))
        self.publisher.publish(self.adapter.detections(
            self.pipeline.output_kind, header, variant, detections))
        self.frames_published += 1
        if self.draw_markers:
            self.marker_publisher.publish(markers(self.pipeline.output_kind, header, detections))
        if self.debug_images:
            debug = Image(header=header)
            encode_bgr8(annotate(frame.image, detections), debug)
            self.debug_publisher.publish(debug)

    def on_image(self, msg: Image) -> None:
        """Subscription callback for stock executors: all stages at once, in this thread.

        The DeadlineExecutor does not call it: it releases :meth:`job_stages` to the lane.
        """
        stages = self.job_stages(TakenMessage.of(msg))
        if stages is not None:
            run_to_completion(stages)
