"""``edge-perception demo``: a synthetic drive through the real container, with a report.

A camera node publishes frames of the held-out 'demo' split at a fixed rate, the perception
container (the same one the launch file starts) processes them, and a collector node reads
every task's output back over DDS. The report compares detections with the ground truth of
each frame and shows the response times (image stamp to detections received) per task.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image
from tqdm import tqdm

from edge_perception.core.config import PerceptionConfig, TaskConfig
from edge_perception.core.statistics import ResponseTimes
from edge_perception.models.synthetic import Frame, generate_frame
from edge_perception.ros.container import PerceptionContainer
from edge_perception.ros.image_conversion import encode_bgr8
from edge_perception.ros.message_adapter import message_adapter, time_from_ns
from edge_perception.tasks.metrics import MatchCounts
from edge_perception.tasks.pipelines import PIPELINES

# After the last frame, wait this long for outputs still in flight before reporting.
DRAIN_S = 5.0


@dataclass
class TaskResult:
    task: TaskConfig
    response_ns: list[int] = field(default_factory=list)
    counts: MatchCounts = field(default_factory=MatchCounts)

    @property
    def received(self) -> int:
        return len(self.response_ns)

    def expected(self, sent: int, rate_hz: float) -> int:
        """Outputs due: one per frame, or one per period when the task is slower than the
        camera (the scheduler skips frames inside a period)."""
        frame_period_ms = 1000.0 / rate_hz
        return math.ceil(sent * min(1.0, frame_period_ms / self.task.period_ms))

    def misses(self, sent: int, rate_hz: float) -> int:
        """Late outputs plus due outputs that never came."""
        late = sum(1 for r in self.response_ns if r > self.task.deadline_ns)
        return late + max(0, self.expected(sent, rate_hz) - self.received)


class SyntheticCamera(Node):
    """Publishes ``frames`` demo-split frames at ``rate_hz``, stamped with the send time."""

    def __init__(self, *, topics: set[str], frames: int, rate_hz: float,
                 context: Context) -> None:
        super().__init__('demo_camera', context=context)
        self.publishers_ = [self.create_publisher(Image, topic, 10) for topic in sorted(topics)]
        self.truth: dict[int, Frame] = {}
        self.frames = frames
        self.done = threading.Event()
        self._next = 0
        self._period_s = 1.0 / rate_hz
        self._progress = tqdm(total=frames, desc='drive (frames sent)')

    def start(self) -> None:
        """Begin publishing (after the subscribers have been discovered)."""
        self.timer = self.create_timer(self._period_s, self._publish)

    def _publish(self) -> None:
        if self._next >= self.frames:
            self.timer.cancel()
            self._progress.close()
            self.done.set()
            return
        frame = generate_frame('demo', self._next)
        msg = Image()
        encode_bgr8(frame.image, msg)
        stamp_ns = time.time_ns()
        msg.header.stamp = time_from_ns(stamp_ns)
        msg.header.frame_id = 'camera_front'
        self.truth[stamp_ns] = frame
        for publisher in self.publishers_:
            publisher.publish(msg)
        self._next += 1
        self._progress.update()


class DetectionCollector(Node):
    """Subscribes every task's output and scores it against the camera's ground truth."""

    def __init__(self, config: PerceptionConfig, camera: SyntheticCamera, *,
                 context: Context) -> None:
        super().__init__('demo_collector', context=context)
        self.adapter = message_adapter()
        self.camera = camera
        self.results = {task.name: TaskResult(task) for task in config.tasks}
        for task in config.tasks:
            kind = PIPELINES[task.pipeline].output_kind
            self.create_subscription(
                self.adapter.detections_type(kind), task.output_topic,
                lambda msg, task=task, kind=kind: self._on_output(task, kind, msg), 50)

    def _on_output(self, task: TaskConfig, kind: str, msg: Any) -> None:
        received_ns = time.time_ns()
        header, _, detections = self.adapter.read_detections(kind, msg)
        stamp_ns = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec
        frame = self.camera.truth.get(stamp_ns)
        if frame is None:
            return
        result = self.results[task.name]
        result.response_ns.append(received_ns - stamp_ns)
        wanted = 'sign' if kind == 'traffic_sign' else 'light'
        result.counts.add_frame(
            [(d.label, (d.x, d.y, d.width, d.height)) for d in detections],
            [(o.label, (o.x, o.y, o.width, o.height)) for o in frame.objects if o.kind == wanted],
        )


def drive(container: PerceptionContainer, *, context: Context, frames: int,
          rate_hz: float) -> DetectionCollector:
    """Send ``frames`` camera frames at ``rate_hz`` through ``container`` and collect outputs.

    The camera and collector spin on their own thread, so a busy container delays neither
    frame publication nor the time at which outputs are received.
    """
    config = container.config
    camera = SyntheticCamera(topics={t.input_topic for t in config.tasks}, frames=frames,
                             rate_hz=rate_hz, context=context)
    collector = DetectionCollector(config, camera, context=context)
    side = SingleThreadedExecutor(context=context)
    side.add_node(camera)
    side.add_node(collector)
    threading.Thread(target=side.spin, daemon=True).start()
    try:
        subscribers = len(config.tasks)
        while any(p.get_subscription_count() < subscribers for p in camera.publishers_):
            container.executor.spin_once(timeout_sec=0.05)
        camera.start()
        while not camera.done.is_set():
            container.executor.spin_once(timeout_sec=0.05)
        drain_until = time.monotonic() + DRAIN_S
        while time.monotonic() < drain_until:
            container.executor.spin_once(timeout_sec=0.05)
    finally:
        side.shutdown()
        camera.destroy_node()
        collector.destroy_node()
    return collector


def run_demo(config: PerceptionConfig, *, frames: int, rate_hz: float, out: TextIO) -> None:
    context = Context()
    rclpy.init(context=context)
    container = None
    try:
        print(f'loading models for {len(config.tasks)} tasks (TVM, cached after the first run)',
              file=out)
        container = PerceptionContainer(config, context=context)
        collector = drive(container, context=context, frames=frames, rate_hz=rate_hz)
        _print_report(collector, frames, rate_hz, out)
        _print_scheduler(container, out)
    finally:
        if container is not None:
            container.destroy()
        rclpy.try_shutdown(context=context)


def _print_scheduler(container: PerceptionContainer, out: TextIO) -> None:
    print('\n== deadline executor (release = frame taken from DDS)', file=out)
    print(f'{"task":<14} {"variant":<8} {"released":>8} {"skipped":>8} {"completed":>9} '
          f'{"misses":>7} {"drops":>6} {"p50 ms":>8} {"p99 ms":>8}', file=out)
    variants = container.variants()
    for name, stats in container.scheduler.stats.items():
        times = stats.response_times()
        print(f'{name:<14} {variants[name]:<8} {stats.released:>8} {stats.skipped:>8} '
              f'{stats.completed:>9} {stats.misses:>7} {sum(stats.drops.values()):>6} '
              f'{times.p50_ms:>8.1f} {times.p99_ms:>8.1f}', file=out)


def _print_report(collector: DetectionCollector, sent: int, rate_hz: float, out: TextIO) -> None:
    print(f'\n== demo report: {sent} frames at {rate_hz:g} Hz', file=out)
    header = (f'{"task":<14} {"lane":<5} {"deadline":>9} {"outputs":>8} {"misses":>7} '
              f'{"p50 ms":>8} {"p99 ms":>8} {"precision":>9} {"recall":>7}')
    print(header, file=out)
    for result in collector.results.values():
        times = ResponseTimes.of(result.response_ns)
        print(f'{result.task.name:<14} {result.task.lane:<5} {result.task.deadline_ms:>7.0f}ms '
              f'{result.received:>8} {result.misses(sent, rate_hz):>7} {times.p50_ms:>8.1f} '
              f'{times.p99_ms:>8.1f} {result.counts.precision:>9.3f} '
              f'{result.counts.recall:>7.3f}', file=out)
    print('misses = outputs later than the deadline + outputs due (one per frame, or per '
          'period for tasks slower than the camera) that never came', file=out)

