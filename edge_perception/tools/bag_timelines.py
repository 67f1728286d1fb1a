"""Timelines of a run recorded with ``ros2 bag record`` (the outputs and the miss events).

A task's response time is when the recorder got its output (the bag's log time) minus the
frame's header stamp, so the camera must stamp frames with the wall-clock capture time (a
live camera does; replay with ``edge-perception replay --restamp``). Frames dropped by the
executor come from the deadline-miss events (typed, edge_perception_msgs).
"""

from __future__ import annotations

from pathlib import Path

from edge_perception.core.config import PerceptionConfig
from edge_perception.monitor.timeline import Sample, TaskTimeline, TimelineError
from edge_perception.ros.message_adapter import (
    DEADLINE_MISS_TOPIC,
    message_adapter,
    ns_from_time,
)
from edge_perception.tasks.pipelines import output_kind
from edge_perception.tools.bags import read_bag


def bag_timelines(bag: Path, config: PerceptionConfig) -> list[TaskTimeline]:
    adapter = message_adapter()
    by_topic = {task.output_topic: task for task in config.tasks}
    timelines = {task.name: TaskTimeline(task.name, task.deadline_ms) for task in config.tasks}
    for message, decoded in read_bag(bag):
        try:
            if message.topic in by_topic:
                task = by_topic[message.topic]
                header, _, _ = adapter.read_detections(output_kind(task.pipeline),
                                                       decoded)
                stamp = ns_from_time(header.stamp)
                timelines[task.name].samples.append(
                    Sample(stamp / 1e9, (message.timestamp_ns - stamp) / 1e6))
            elif message.topic == DEADLINE_MISS_TOPIC:
                event = adapter.read_deadline_miss(decoded)
                if event.dropped and event.task in timelines:
                    timelines[event.task].samples.append(Sample(event.release_ns / 1e9, None))
        except ValueError as err:
            raise TimelineError(f'{bag}: message on {message.topic} at {message.timestamp_ns}: '
                                f'{err}') from None
    found = [t for t in timelines.values() if t.samples]
    if not found:
        raise TimelineError(f'{bag} has no output of the configured tasks (record '
                            f'{", ".join(sorted(by_topic))} and {DEADLINE_MISS_TOPIC})')
    for timeline in found:
        timeline.samples.sort(key=lambda sample: sample.sent_s)
    return found
