"""Subscribers of our topics that expect another message type: found, logged, counted.

DDS never matches a subscriber whose type differs from the publisher's, so it silently
receives nothing. rclpy's incompatible-type event would say so, but rmw_fastrtps raises it
for no subscriber in another process (and refuses a second type in the same process), so the
container asks the ROS graph instead, which lists every endpoint with its type.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from rclpy.node import Node


def type_name(msg_type: Any) -> str:
    """The ROS name of a generated message class, e.g. 'std_msgs/msg/String'."""
    return f'{msg_type.__module__.split(".")[0]}/msg/{msg_type.__name__}'


# Discovery can list a remote endpoint before its node's name; the log waits this many checks
# for the name, so the user reads which node it is.
NAME_WAIT_CHECKS = 5
UNKNOWN_NAME = '_NODE_NAME_UNKNOWN_'


class SubscriberTypeCheck:
    """Looks, on each :meth:`check`, for subscribers of ``topics`` (topic -> message class)
    with another type; each is counted per topic in ``mismatched`` at once and logged once,
    by node name when discovery has learnt it."""

    def __init__(self, node: Node, topics: Mapping[str, Any]) -> None:
        self._node = node
        self._expected = {topic: type_name(msg_type) for topic, msg_type in topics.items()}
        self._seen: set[tuple[str, bytes]] = set()
        self._unlogged: dict[tuple[str, bytes], int] = {}
        self.mismatched: Counter[str] = Counter()

    def check(self) -> None:
        for topic, expected in self._expected.items():
            for endpoint in self._node.get_subscriptions_info_by_topic(topic):
                key = (topic, bytes(endpoint.endpoint_gid))
                if endpoint.topic_type == expected:
                    continue
                if key not in self._seen:
                    self._seen.add(key)
                    self.mismatched[topic] += 1
                    self._unlogged[key] = 0
                if key in self._unlogged:
                    self._log_when_named(key, endpoint, expected)

    def _log_when_named(self, key: tuple[str, bytes], endpoint: Any, expected: str) -> None:
        waited = self._unlogged[key]
        if endpoint.node_name == UNKNOWN_NAME and waited < NAME_WAIT_CHECKS:
            self._unlogged[key] = waited + 1
            return
        del self._unlogged[key]
        name = f'{endpoint.node_namespace.rstrip("/")}/{endpoint.node_name}'
        self._node.get_logger().warning(
            f"subscriber {name} of '{key[0]}' expects {endpoint.topic_type}, but "
            f'{expected} is published there: it receives nothing')
