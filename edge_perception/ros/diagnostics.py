"""/diagnostics for rqt_runtime_monitor and rqt_robot_monitor: one status per task and lane.

Conventions of diagnostic_msgs: a DiagnosticArray with a header stamp, statuses named
``<component>: <item>``, a level byte (OK/WARN/ERROR), a one-line message and string
key/values. What they say, and how levels are decided, is core.health's: this maps it.
"""

from __future__ import annotations

from collections.abc import Iterable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from std_msgs.msg import Header

from edge_perception.core.health import LaneHealth, TaskHealth


def diagnostics_message(health: Iterable[TaskHealth | LaneHealth], *,
                        header: Header) -> DiagnosticArray:
    return DiagnosticArray(header=header, status=[
        DiagnosticStatus(level=bytes([each.level]), name=each.name, message=each.message,
                         hardware_id=each.lane,
                         values=[KeyValue(key=k, value=v) for k, v in each.key_values().items()])
        for each in health])

