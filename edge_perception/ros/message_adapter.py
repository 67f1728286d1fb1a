"""The one place that turns detections and deadline misses into ROS messages.

Two encodings, chosen once per process:

* generated: edge_perception_msgs (TrafficLightArray, TrafficSignArray, DeadlineMiss), when
  that package was built with colcon on a real ROS 2 install;
* standard: only standard types, for installs that cannot generate interfaces (the PyPI wheels):

  - detections -> visualization_msgs/MarkerArray. Marker 0 has action DELETEALL (so RViz clears
    the previous frame), the image header, ``ns`` = output kind and ``text`` = model variant.
    Each detection follows as an ADD CUBE marker: ``ns`` = kind, ``id`` = index,
    ``pose.position.x/y`` = box centre in pixels, ``pose.position.z`` = class id,
    ``scale.x/y`` = box width/height in pixels, ``scale.z`` = score, ``text`` = label.
  - deadline misses -> diagnostic_msgs/DiagnosticArray with one WARN status named
    ``edge_perception: <task>``, ``hardware_id`` = lane, and key/values job_id, variant,
    deadline_ms, response_time_ms, dropped; header.stamp = the job's release time.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Protocol

from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from edge_perception.core.deadline_miss import DeadlineMissEvent
from edge_perception.tasks.detections import Detection

OUTPUT_KINDS = ('traffic_light', 'traffic_sign')
MISS_PREFIX = 'edge_perception: '
DEADLINE_MISS_TOPIC = '/edge_perception/deadline_misses'
# Marker colours (RGBA) per label, so RViz shows lights in their own colour.
_LABEL_COLOURS = {'red': (1.0, 0.0, 0.0), 'yellow': (1.0, 0.8, 0.0), 'green': (0.0, 1.0, 0.0)}


class MessageAdapter(Protocol):
    """Builds and reads the package's output messages in one encoding."""

    generated: bool

    def detections_type(self, kind: str) -> Any: ...

    def detections(
        self, kind: str, header: Header, variant: str, detections: Sequence[Detection]
    ) -> Any: ...

    def read_detections(self, kind: str, msg: Any) -> tuple[Header, str, list[Detection]]: ...

    def deadline_miss_type(self) -> Any: ...

    def deadline_miss(self, event: DeadlineMissEvent) -> Any: ...

    def read_deadline_miss(self, msg: Any) -> DeadlineMissEvent: ...


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


class StandardAdapter:
    """Encodes with visualization_msgs and diagnostic_msgs only (see module docstring)."""

    generated = False

    def detections_type(self, kind: str) -> Any:
        _check_kind(kind)
        return MarkerArray

    def detections(
        self, kind: str, header: Header, variant: str, detections: Sequence[Detection]
    ) -> MarkerArray:
        _check_kind(kind)
        clear = Marker(header=header, ns=kind, id=0, action=Marker.DELETEALL, text=variant)
        markers = [clear]
        for index, det in enumerate(detections):
            marker = Marker(header=header, ns=kind, id=index, type=Marker.CUBE, action=Marker.ADD)
            marker.pose.position.x = det.x + det.width / 2
            marker.pose.position.y = det.y + det.height / 2
            marker.pose.position.z = float(det.class_id)
            marker.pose.orientation.w = 1.0
            marker.scale.x, marker.scale.y, marker.scale.z = det.width, det.height, det.score
            red, green, blue = _LABEL_COLOURS.get(det.label, (0.2, 0.4, 1.0))
            marker.color.r, marker.color.g, marker.color.b, marker.color.a = red, green, blue, 0.8
            marker.text = det.label
            markers.append(marker)
        return MarkerArray(markers=markers)

    def read_detections(self, kind: str, msg: Any) -> tuple[Header, str, list[Detection]]:
        _check_kind(kind)
        markers = list(msg.markers)
        if not markers or markers[0].action != Marker.DELETEALL or markers[0].ns != kind:
            raise ValueError(f'not a {kind} MarkerArray: first marker must be DELETEALL')
        detections = [
            Detection(
                label=m.text,
                class_id=round(m.pose.position.z),
                score=m.scale.z,
                x=m.pose.position.x - m.scale.x / 2,
                y=m.pose.position.y - m.scale.y / 2,
                width=m.scale.x,
                height=m.scale.y,
            )
            for m in markers[1:]
        ]
        return markers[0].header, markers[0].text, detections

    def deadline_miss_type(self) -> Any:
        return DiagnosticArray

    def deadline_miss(self, event: DeadlineMissEvent) -> DiagnosticArray:
        values = {
            'job_id': str(event.job_id),
            'variant': event.variant,
            'deadline_ms': f'{event.deadline_ns / 1e6:.3f}',
            'response_time_ms': f'{event.response_time_ns / 1e6:.3f}',
            'dropped': str(event.dropped).lower(),
        }
        status = DiagnosticStatus(
            level=DiagnosticStatus.WARN,
            name=f'{MISS_PREFIX}{event.task}',
            message='deadline miss (dropped)' if event.dropped else 'deadline miss (late)',
            hardware_id=event.lane,
            values=[KeyValue(key=k, value=v) for k, v in values.items()],
        )
        return DiagnosticArray(header=Header(stamp=time_from_ns(event.release_ns)),
                               status=[status])

    def read_deadline_miss(self, msg: Any) -> DeadlineMissEvent:
        if len(msg.status) != 1 or not msg.status[0].name.startswith(MISS_PREFIX):
            raise ValueError('not a deadline-miss DiagnosticArray: needs one status named '
                             f'{MISS_PREFIX!r}<task>')
        status = msg.status[0]
        values = {kv.key: kv.value for kv in status.values}
        try:
            return DeadlineMissEvent(
                task=status.name[len(MISS_PREFIX):], lane=status.hardware_id,
                variant=values['variant'], job_id=int(values['job_id']),
                release_ns=ns_from_time(msg.header.stamp),
                deadline_ns=round(float(values['deadline_ms']) * 1e6),
                response_time_ns=round(float(values['response_time_ms']) * 1e6),
                dropped=values['dropped'] == 'true')
        except (KeyError, ValueError) as err:
            raise ValueError(f'deadline-miss status {status.name!r} has a bad value: '
                             f'{err}') from None


class GeneratedAdapter:
    """Encodes with the edge_perception_msgs types built by colcon."""

    generated = True

    def __init__(self, msgs: Any) -> None:
        self._msgs = msgs
        self._array_types = {
            'traffic_light': (msgs.TrafficLightArray, msgs.TrafficLight, 'lights'),
            'traffic_sign': (msgs.TrafficSignArray, msgs.TrafficSign, 'signs'),
        }

    def detections_type(self, kind: str) -> Any:
        _check_kind(kind)
        return self._array_types[kind][0]

    def detections(
        self, kind: str, header: Header, variant: str, detections: Sequence[Detection]
    ) -> Any:
        _check_kind(kind)
        array_type, item_type, field = self._array_types[kind]
        items = []
        for det in detections:
            box = {'score': det.score, 'x': det.x, 'y': det.y,
                   'width': det.width, 'height': det.height}
            if kind == 'traffic_light':
                items.append(item_type(state=det.class_id, **box))
            else:
                items.append(item_type(label=det.label, class_id=det.class_id, **box))
        return array_type(header=header, variant=variant, **{field: items})

    def read_detections(self, kind: str, msg: Any) -> tuple[Header, str, list[Detection]]:
        _check_kind(kind)
        field = self._array_types[kind][2]
        detections = [
            Detection(
                label=getattr(item, 'label', ''),
                class_id=int(getattr(item, 'class_id', getattr(item, 'state', 0))),
                score=item.score, x=item.x, y=item.y, width=item.width, height=item.height,
            )
            for item in getattr(msg, field)
        ]
        return msg.header, msg.variant, detections

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


def message_adapter(*, prefer_generated: bool = True) -> MessageAdapter:
    """The generated encoding where edge_perception_msgs is importable, else the standard one."""
    if prefer_generated:
        try:
            return GeneratedAdapter(importlib.import_module('edge_perception_msgs.msg'))
        except (ImportError, AttributeError):
            # Not built; in a source checkout the interface folder even imports as an
            # empty namespace package, hence AttributeError.
            pass
    return StandardAdapter()
