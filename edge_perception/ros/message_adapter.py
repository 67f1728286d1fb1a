"""The one place that turns detections and deadline misses into ROS messages.

Typed messages of edge_perception_msgs (msg/): ``TrafficLightArray``, ``TrafficSignArray``,
the generic ``DetectionArray`` (laid out as vision_msgs/Detection2DArray) and ``DeadlineMiss``,
built by ``scripts/bootstrap`` into the venv from the PyPI wheels, or by
colcon on a ROS 2 install. ``visualization_msgs/MarkerArray`` is only what rviz draws (boxes
coloured by class with text labels, on ``<output_topic>/markers`` when a node is asked to),
never the data interface.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

from builtin_interfaces.msg import Duration, Time
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from edge_perception.core.deadline_miss import DeadlineMissEvent
from edge_perception.tasks.classes import LIGHT_STATES
from edge_perception.tasks.detections import Detection

OUTPUT_KINDS = ('traffic_light', 'traffic_sign', 'detection')
DEADLINE_MISS_TOPIC = '/edge_perception/deadline_misses'
# Marker colours (RGB) per label, so rviz shows lights in their own colour.
_LABEL_COLOURS = {'red': (1.0, 0.0, 0.0), 'yellow': (1.0, 0.8, 0.0), 'green': (0.0, 1.0, 0.0)}


def _check_kind(kind: str) -> None:
    if kind not in OUTPUT_KINDS:
        raise ValueError(f'unknown output kind {kind!r} (known: {list(OUTPUT_KINDS)})')


def ns_from_time(stamp: Any) -> int:
    """Nanoseconds of a builtin_interfaces Time or Duration."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def time_from_ns(stamp_ns: int) -> Time:
    return Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def duration_from_ns(span_ns: int) -> Duration:
    return Duration(sec=span_ns // 1_000_000_000, nanosec=span_ns % 1_000_000_000)


class MessagesNotBuiltError(ImportError):
    """edge_perception_msgs cannot be imported: the message types were never built here."""


class MessageAdapter:
    """Builds and reads the package's typed output messages."""

    def __init__(self, msgs: Any) -> None:
        self._msgs = msgs
        self._array_types = {'traffic_light': (msgs.TrafficLightArray, 'lights'),
                             'traffic_sign': (msgs.TrafficSignArray, 'signs'),
                             'detection': (msgs.DetectionArray, 'detections')}

    def detections_type(self, kind: str) -> Any:
        _check_kind(kind)
        return self._array_types[kind][0]

    def detections(
        self, kind: str, header: Header, variant: str, detections: Sequence[Detection]
    ) -> Any:
        _check_kind(kind)
        array_type, field = self._array_types[kind]
        item = {'traffic_light': self._light, 'traffic_sign': self._sign,
                'detection': self._generic}[kind]
        return array_type(header=header, variant=variant,
                          **{field: [item(det, header) for det in detections]})

    def _light(self, det: Detection, _: Header) -> Any:
        return self._msgs.TrafficLight(state=det.class_id, score=det.score, x=det.x, y=det.y,
                                       width=det.width, height=det.height)

    def _sign(self, det: Detection, _: Header) -> Any:
        return self._msgs.TrafficSign(label=det.label, class_id=det.class_id, score=det.score,
                                      x=det.x, y=det.y, width=det.width, height=det.height)

    def _generic(self, det: Detection, header: Header) -> Any:
        msgs = self._msgs
        centre = msgs.Pose2D(position=msgs.Point2D(x=det.x + det.width / 2,
                                                   y=det.y + det.height / 2))
        hypothesis = msgs.ObjectHypothesis(class_id=det.label, score=det.score)
        return msgs.Detection(
            header=header, results=[msgs.ObjectHypothesisWithPose(hypothesis=hypothesis)],
            bbox=msgs.BoundingBox2D(center=centre, size_x=det.width, size_y=det.height))

    def read_detections(self, kind: str, msg: Any) -> tuple[Header, str, list[Detection]]:
        """The header, variant and detections of a message of ``kind``. A generic detection
        carries class names, not indices: its ``class_id`` reads as -1."""
        _check_kind(kind)
        array_type, field = self._array_types[kind]
        if not hasattr(msg, field):  # e.g. rviz markers recorded on an output topic
            raise ValueError(f'{type(msg).__name__} is not a {array_type.__name__}')
        read = {'traffic_light': _read_light, 'traffic_sign': _read_sign,
                'detection': _read_generic}[kind]
        return msg.header, msg.variant, [read(item) for item in getattr(msg, field)]

    def deadline_miss_type(self) -> Any:
        return self._msgs.DeadlineMiss

    def deadline_miss(self, event: DeadlineMissEvent) -> Any:
        return self._msgs.DeadlineMiss(
            header=Header(stamp=time_from_ns(event.release_ns)),
            task=event.task,
            lane=event.lane,
            variant=event.variant,
            job_id=event.job_id,
            deadline=duration_from_ns(event.deadline_ns),
            response_time=duration_from_ns(event.response_time_ns),
            dropped=event.dropped,
        )

    def read_deadline_miss(self, msg: Any) -> DeadlineMissEvent:
        return DeadlineMissEvent(
            task=msg.task, lane=msg.lane, variant=msg.variant, job_id=msg.job_id,
            release_ns=ns_from_time(msg.header.stamp), deadline_ns=ns_from_time(msg.deadline),
            response_time_ns=ns_from_time(msg.response_time), dropped=msg.dropped)


def _read_light(item: Any) -> Detection:
    # A light's label is its state, the one thing its message carries.
    label = LIGHT_STATES[item.state] if item.state < len(LIGHT_STATES) else f'state_{item.state}'
    return Detection(label=label, class_id=int(item.state), score=item.score, x=item.x,
                     y=item.y, width=item.width, height=item.height)


def _read_sign(item: Any) -> Detection:
    return Detection(label=item.label, class_id=int(item.class_id), score=item.score, x=item.x,
                     y=item.y, width=item.width, height=item.height)


def _read_generic(item: Any) -> Detection:
    best = max((result.hypothesis for result in item.results), key=lambda h: h.score,
               default=None)
    centre, width, height = item.bbox.center.position, item.bbox.size_x, item.bbox.size_y
    return Detection(label='' if best is None else best.class_id, class_id=-1,
                     score=0.0 if best is None else best.score, x=centre.x - width / 2,
                     y=centre.y - height / 2, width=width, height=height)


def message_adapter() -> MessageAdapter:
    """The adapter over edge_perception_msgs; :class:`MessagesNotBuiltError` names the fix when
    the package was never built."""
    try:
        return MessageAdapter(importlib.import_module('edge_perception_msgs.msg'))
    except (ImportError, AttributeError):
        # Never built: in a source checkout the interface folder even imports as an empty
        # namespace package, hence AttributeError.
        raise MessagesNotBuiltError(
            'edge_perception_msgs is not built: run ./scripts/bootstrap (PyPI set-up) or '
            'colcon build --paths edge_perception_msgs (ROS 2 install)') from None


def markers(kind: str, header: Header, detections: Sequence[Detection], *,
            lifetime_ns: int = 500_000_000) -> MarkerArray:
    """What rviz draws of one frame's detections: a DELETEALL (the previous frame's boxes go),
    then per detection a flat box coloured by its label and its label as text, in image
    pixels (x right, y down), gone after ``lifetime_ns`` if no frame follows."""
    _check_kind(kind)
    drawn = [Marker(header=header, ns=kind, id=0, action=Marker.DELETEALL)]
    lifetime = duration_from_ns(lifetime_ns)
    for index, det in enumerate(detections):
        red, green, blue = _LABEL_COLOURS.get(det.label, (0.2, 0.4, 1.0))
        box = Marker(header=header, ns=kind, id=2 * index + 1, type=Marker.CUBE,
                     action=Marker.ADD, lifetime=lifetime)
        box.pose.position.x = det.x + det.width / 2
        box.pose.position.y = det.y + det.height / 2
        box.pose.orientation.w = 1.0
        box.scale.x, box.scale.y, box.scale.z = det.width, det.height, 1.0
        box.color.r, box.color.g, box.color.b, box.color.a = red, green, blue, 0.5
        label = Marker(header=header, ns=f'{kind}_labels', id=2 * index + 2,
                       type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, lifetime=lifetime,
                       text=f'{det.label} {det.score:.2f}')
        label.pose.position.x, label.pose.position.y = det.x, det.y
        label.pose.orientation.w = 1.0
        label.scale.z = max(det.height / 3, 8.0)
        label.color.r, label.color.g, label.color.b, label.color.a = red, green, blue, 1.0
        drawn += [box, label]
    return MarkerArray(markers=drawn)
