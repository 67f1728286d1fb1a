"""``edge-perception demo``: a recorded drive replayed through the real container, with a report.

The drive is a rosbag2 (written once by ``synth-bag`` rules if missing). The bag player sends
its frames with the original timing, the perception container (the one the launch file
starts) processes them, and a collector node reads every task's output back over DDS. The
report compares detections with the bag's ground truth and shows response times (frame sent
to detections received) and deadline misses per task.
"""

from __future__ import annotations

import bisect
import gc
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.subscription import MessageInfo

from edge_perception.core.config import PerceptionConfig, TaskConfig
from edge_perception.core.release_slots import PERIOD_TOLERANCE, ReleaseSlots
from edge_perception.core.statistics import ResponseTimes
from edge_perception.monitor.timeline import Sample, TaskTimeline, write_log
from edge_perception.ros.container import PerceptionContainer
from edge_perception.ros.message_adapter import (
    message_adapter,
    ns_from_time,
)
from edge_perception.tasks.detections import Detection
from edge_perception.tasks.metrics import MatchCounts
from edge_perception.tasks.pipelines import output_kind
from edge_perception.tools.bags import (
    CAMERA_TOPICS,
    GROUND_TRUTH_TOPICS,
    BagPlayer,
    PlayedImage,
    read_bag,
    write_synthetic_bag,
)

# After the last frame, wait this long for outputs still in flight before reporting.
DRAIN_S = 3.0
# '_typed': bags of earlier versions held marker-encoded ground truth.
DEMO_BAG = Path('demo_output') / 'demo_drive_typed'
RUN_LOG = Path('demo_output') / 'demo_run.jsonl'
_TRUTH_KIND = {'traffic_light': 'light', 'traffic_sign': 'sign'}

Truth = dict[int, dict[str, list[Detection]]]  # stamp -> kind -> boxes


def load_truth(bag: Path) -> Truth:
    """Ground truth of a synthetic bag, keyed by frame stamp (empty for other bags)."""
    adapter = message_adapter()
    truth: Truth = {}
    topics = {topic: kind for kind, topic in GROUND_TRUTH_TOPICS.items()}
    for message, decoded in read_bag(bag):
        kind = topics.get(message.topic)
        if kind is None:
            continue
        header, _, detections = adapter.read_detections(
            'traffic_light' if kind == 'light' else 'traffic_sign', decoded)
        stamp = ns_from_time(header.stamp)
        truth.setdefault(stamp, {})[kind] = detections
    return truth


@dataclass
class TaskResult:
    task: TaskConfig
    response_ns: list[int] = field(default_factory=list)
    output_stamps: list[int] = field(default_factory=list)  # frame stamp of each response
    counts: MatchCounts = field(default_factory=MatchCounts)
    scored: int = 0  # outputs compared with ground truth
    labels: Counter[str] = field(default_factory=Counter)  # detections per label, all outputs

    @property
    def received(self) -> int:
        return len(self.response_ns)

    def due(self, stamps_ns: Sequence[int]) -> list[int]:
        """The frames of ``stamps_ns`` that owe an output (the recorded schedule, not the
        jittery send times): one per task period, by the scheduler's own release rule.

        The last one owes only where the drive went on long enough after the task's previous
        answered frame for that rule to allow another release: a drive that stops 25 ms into
        a 100 ms period owes nothing for it to a task that answered a frame 60 ms into the
        period before (ours' one end-to-end miss at a 480 Hz camera was such a period)."""
        ordered = sorted(stamps_ns)
        slots = ReleaseSlots(self.task.period_ns)
        due = [stamp for stamp in ordered if slots.admit(stamp, stamp)]
        before = [stamp for stamp in self.output_stamps if due and stamp < due[-1]]
        spacing = self.task.period_ns * (1 - PERIOD_TOLERANCE)
        if before and ordered[-1] < max(before) + spacing:
            due.pop()
        return due

    def periods(self, stamps_ns: Sequence[int]) -> PeriodOutcomes:
        """Each task period (a due frame up to the next) is met when an output for a frame
        taken in it came within the deadline: a stock executor answers whichever frames it
        takes, ours one per period, and an extra output of one period must not make up for
        another period's missing one (it did when misses were late outputs plus due minus
        received: every row at a 960 Hz camera looked perfect)."""
        due = self.due(stamps_ns)
        on_time = sorted(stamp for stamp, response in zip(
            self.output_stamps, self.response_ns, strict=True)
            if response <= self.task.deadline_ns)
        answered = sorted(self.output_stamps)
        missed = silent = 0
        for index, start in enumerate(due):
            end = due[index + 1] if index + 1 < len(due) else math.inf
            if not _any_in(on_time, start, end):
                missed += 1
                silent += not _any_in(answered, start, end)
        return PeriodOutcomes(len(due), missed, silent)

    def misses(self, stamps_ns: Sequence[int]) -> int:
        """Task periods without an output on time (see :meth:`periods`)."""
        return self.periods(stamps_ns).missed


@dataclass(frozen=True)
class PeriodOutcomes:
    due: int  # task periods in the drive
    missed: int  # without an output on time for a frame taken in it
    silent: int  # of those, without any output for a frame taken in it


def _any_in(ordered: Sequence[int], start: int, end: float) -> bool:
    index = bisect.bisect_left(ordered, start)
    return index < len(ordered) and ordered[index] < end


class DetectionCollector(Node):
    """Subscribes every task's output and scores it against the bag's ground truth."""

    def __init__(self, config: PerceptionConfig, truth: Truth, *, context: Context) -> None:
        super().__init__('demo_collector', context=context)
        self.adapter = message_adapter()
        self.truth = truth
        self.sent: dict[tuple[str, int], int] = {}
        self.recorded: dict[tuple[str, int], int] = {}  # sent stamp -> stamp in the bag
        self.frames: Counter[str] = Counter()
        self.unsent: Counter[str] = Counter()  # frames the player could not hand to DDS
        self.results = {task.name: TaskResult(task) for task in config.tasks}
        self._lock = threading.Lock()
        self.outputs = []
        for task in config.tasks:
            kind = output_kind(task.pipeline)
            self.outputs.append(self.create_subscription(
                self.adapter.detections_type(kind), task.output_topic,
                lambda msg, info, task=task, kind=kind: self._on_output(task, kind, msg, info),
                50))

    def connected(self) -> bool:
        """Whether every task's output publisher has been matched."""
        return all(output.get_publisher_count() > 0 for output in self.outputs)

    def on_image(self, played: PlayedImage) -> None:
        """Player callback (player thread): remember when each frame was sent."""
        with self._lock:
            self.sent[(played.topic, played.stamp_ns)] = played.sent_ns
            self.recorded[(played.topic, played.stamp_ns)] = played.recorded_stamp_ns
            self.frames[played.topic] += 1

    def _on_output(self, task: TaskConfig, kind: str, msg: Any, info: MessageInfo) -> None:
        # When DDS received it: a consumer in another process would have it then, while this
        # callback may wait for the GIL in a process busy with the container.
        received_ns = info['received_timestamp'] or time.time_ns()
        header, _, detections = self.adapter.read_detections(kind, msg)
        stamp = ns_from_time(header.stamp)
        with self._lock:
            sent_ns = self.sent.get((task.input_topic, stamp))
            recorded = self.recorded.get((task.input_topic, stamp))
        if sent_ns is None or recorded is None:
            return
        result = self.results[task.name]
        result.response_ns.append(received_ns - sent_ns)
        result.output_stamps.append(stamp)
        result.labels.update(d.label for d in detections)
        truth = self.truth.get(recorded, {}).get(_TRUTH_KIND[kind])
        if truth is not None and task.input_topic == CAMERA_TOPICS[0]:
            result.scored += 1
            result.counts.add_frame(
                [(d.label, (d.x, d.y, d.width, d.height)) for d in detections],
                [(t.label, (t.x, t.y, t.width, t.height)) for t in truth])


def drive(config: PerceptionConfig, *, spin: Callable[[], None], context: Context, bag: Path,
          rate: float = 1.0) -> DetectionCollector:
    """Replay ``bag`` into the graph and collect the outputs of every task of ``config``,
    calling ``spin`` meanwhile (a container's spin_once, or an observer's when the
    containers run in processes of their own).

    The player and the collector spin apart, so a busy container delays neither frame
    publication nor the time at which outputs are received.
    """
    collector = DetectionCollector(config, load_truth(bag), context=context)
    player_node = Node('edge_perception_player', context=context)
    # Restamped as a live camera stamps its frames, so that the containers see each frame's
    # age on arrival (their deadlines count from the stamp).
    player = BagPlayer(player_node, bag, rate=rate, on_image=collector.on_image, restamp=True)
    side = SingleThreadedExecutor(context=context)
    side.add_node(player_node)
    side.add_node(collector)
    threading.Thread(target=side.spin, daemon=True).start()
    try:
        inputs = {t.input_topic for t in config.tasks}
        # Both ways matched before the first frame: a demo right after the models were built
        # lost the first two outputs to a collector not yet matched with their publishers.
        while not collector.connected() or any(
                publisher.get_subscription_count() == 0
                for topic, publisher in player.publishers.items() if topic in inputs):
            spin()
        # A full collection over the long-lived objects of bring-up held the GIL for 93 ms
        # in the executor benchmark's first drive: the player fell behind, then sent 4 frames
        # at once. Collected now and kept out of reach while the drive plays.
        gc.collect()
        gc.freeze()
        threading.Thread(target=player.play, daemon=True).start()
        while not player.done.is_set():
            spin()
        player.raise_failure()
        collector.unsent.update(player.unsent)
        drain_until = time.monotonic() + DRAIN_S
        while time.monotonic() < drain_until:
            spin()
    finally:
        gc.unfreeze()
        player.stop()
        side.shutdown()
        player_node.destroy_node()
        collector.destroy_node()
    return collector


def run_demo(config: PerceptionConfig, *, bag: Path | None, frames: int, rate_hz: float,
             out: TextIO, resolution: tuple[int, int] | None = None) -> None:
    if bag is None:
        size = '' if resolution is None else f'_{resolution[0]}x{resolution[1]}'
        bag = DEMO_BAG.with_name(f'{DEMO_BAG.name}_{frames}f_{rate_hz:g}hz{size}')
        if not bag.exists():
            print(f'writing the demo drive {bag} ({frames} frames at {rate_hz:g} Hz)', file=out)
            bag.parent.mkdir(parents=True, exist_ok=True)
            write_synthetic_bag(bag, frames=frames, rate_hz=rate_hz, resolution=resolution)
    context = Context()
    rclpy.init(context=context)
    container = None
    try:
        print(f'loading models for {len(config.tasks)} tasks (TVM, cached after the first run)',
              file=out)
        container = PerceptionContainer(config, context=context)
        collector = drive(config, spin=container.spin_once, context=context, bag=bag)
        print_report(collector, out)
        _print_scheduler(container, out)
        write_log(timelines(collector), RUN_LOG)
        print(f'\nrun log: {RUN_LOG} (plots: edge-perception report {RUN_LOG})', file=out)
    finally:
        if container is not None:
            container.destroy()
        rclpy.try_shutdown(context=context)


def timelines(collector: DetectionCollector) -> list[TaskTimeline]:
    """Per task: every output (sent time, response) and every due frame without one."""
    result = []
    for task_result in collector.results.values():
        task = task_result.task
        timeline = TaskTimeline(task.name, task.deadline_ms)
        answered = dict(zip(task_result.output_stamps, task_result.response_ns, strict=True))
        stamps = frame_stamps(collector, task.input_topic)
        for stamp in sorted(set(answered) | set(task_result.due(stamps))):
            sent = collector.sent.get((task.input_topic, stamp))
            if sent is not None:
                response = answered.get(stamp)
                timeline.samples.append(Sample(
                    sent / 1e9, None if response is None else response / 1e6))
        result.append(timeline)
    return result


def frame_stamps(collector: DetectionCollector, topic: str) -> list[int]:
    """Header stamps of the frames sent on ``topic``."""
    return [stamp for (t, stamp) in collector.sent if t == topic]


def print_report(collector: DetectionCollector, out: TextIO) -> None:
    print('\n== demo report (frame sent -> detections received)', file=out)
    print(f'{"task":<14} {"lane":<5} {"deadline":>9} {"frames":>7} {"outputs":>8} '
          f'{"misses":>7} {"p50 ms":>8} {"p99 ms":>8} {"precision":>9} {"recall":>7}',
          file=out)
    for result in collector.results.values():
        task = result.task
        sent = collector.frames[task.input_topic]
        times = ResponseTimes.of(result.response_ns)
        misses = result.misses(frame_stamps(collector, task.input_topic))
        scores = (f'{result.counts.precision:>9.3f} {result.counts.recall:>7.3f}'
                  if result.scored else f'{"-":>9} {"-":>7}')
        print(f'{task.name:<14} {task.lane:<5} {task.deadline_ms:>7.0f}ms {sent:>7} '
              f'{result.received:>8} {misses:>7} {times.p50_ms:>8.1f} {times.p99_ms:>8.1f} '
              f'{scores}', file=out)
    print('misses = task periods without an output on time for a frame taken in them',
          file=out)
    print('what the models see: lights trained on synthetic scenes and real photographed '
          'lights, signs on synthetic ones only; by day, not night, LED flicker or arrows '
          '(docs/model-card.md)', file=out)
    if not any(result.scored for result in collector.results.values()):
        # A bag without ground truth (a real drive): what was found, not how well.
        print('\n== detections by label (no ground truth in this bag: no precision/recall)',
              file=out)
        for result in collector.results.values():
            found = ', '.join(f'{label} {count}' for label, count in
                              result.labels.most_common()) or 'none'
            print(f'{result.task.name:<14} {found}', file=out)


def _print_scheduler(container: PerceptionContainer, out: TextIO) -> None:
    print('\n== deadline executor (release = frame taken from DDS)', file=out)
    print(f'{"task":<14} {"variant":<8} {"released":>8} {"skipped":>8} {"completed":>9} '
          f'{"misses":>7} {"drops":>6} {"p50 ms":>8} {"p99 ms":>8} {"bad frames":>10}',
          file=out)
    variants = container.variants()
    for node in container.nodes:
        name = node.task.name
        stats = container.scheduler.stats[name]
        times = stats.response_times()
        print(f'{name:<14} {variants[name]:<8} {stats.released:>8} {stats.skipped:>8} '
              f'{stats.completed:>9} {stats.misses:>7} {sum(stats.drops.values()):>6} '
              f'{times.p50_ms:>8.1f} {times.p99_ms:>8.1f} '
              f'{sum(node.bad_frames.values()):>10}', file=out)
