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


class SubscriberTypeCheck:
    """Looks, on each :meth:`check`, for subscribers of ``topics`` (topic -> message class)
    with another type; each is logged once and counted per topic in ``mismatched``."""

    def __init__(self, node: Node, topics: Mapping[str, Any]) -> None:
        self._node = node
        self._expected = {topic: type_name(msg_type) for topic, msg_type in topics.items()}
        self._seen: set[tuple[str, bytes]] = set()
        self.mismatched: Counter[str] = Counter()

    def check(self) -> None:
        for topic, expected in self._expected.items():
            for endpoint in self._node.get_subscriptions_info_by_topic(topic):
                key = (topic, bytes(endpoint.endpoint_gid))
                if endpoint.topic_type == expected or key in self._seen:
                    continue
                self._seen.add(key)
                self.mismatched[topic] += 1
                name = f'{endpoint.node_namespace.rstrip("/")}/{endpoint.node_name}'
                self._node.get_logger().warning(
                    f"subscriber {name} of '{topic}' expects {endpoint.topic_type}, but "
                    f'{expected} is published there: it receives nothing')
