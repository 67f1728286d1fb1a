"""A Node whose publishers and subscriptions carry only the QoS event handler that matters.

rclpy gives every publisher and subscription two event handlers by default (incompatible
QoS, incompatible type) that only log. Each is a waitable that the executor adds to its wait
set again, in Python, on every wait: in a container of 18 nodes the 142 of them doubled the
spinning thread's CPU time per wait (1.68 vs 0.78 ms, measured), time that the lanes' Python
work then waits for the GIL. A subscription keeps one handler, for incompatible QoS: a camera
offering it delivers nothing, and the user must hear why. Those events are counted per topic.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rclpy.event_handler import (
    PublisherEventCallbacks,
    QoSRequestedIncompatibleQoSInfo,
    SubscriptionEventCallbacks,
)
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import qos_policy_name_from_kind
from rclpy.subscription import Subscription


class LeanNode(Node):
    """A :class:`rclpy.node.Node` without rclpy's default event handlers on its endpoints
    (its own parameter-events publisher included); ``event_callbacks`` given to a create call
    still apply. ``incompatible_qos`` counts the publishers found offering incompatible QoS,
    per subscribed topic."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.incompatible_qos: Counter[str] = Counter()
        super().__init__(*args, **kwargs)

    def create_publisher(self, *args: Any, **kwargs: Any) -> Publisher[Any]:
        kwargs.setdefault('event_callbacks', PublisherEventCallbacks(use_default_callbacks=False))
        return super().create_publisher(*args, **kwargs)

    def create_subscription(self, msg_type: Any, topic: str, *args: Any,
                            **kwargs: Any) -> Subscription[Any]:
        def incompatible(event: QoSRequestedIncompatibleQoSInfo) -> None:
            self.incompatible_qos[topic] += 1
            self.get_logger().warning(
                f"publisher on '{topic}' offers incompatible QoS "
                f'({qos_policy_name_from_kind(event.last_policy_kind)}): '
                'no messages will be received from it')

        kwargs.setdefault('event_callbacks', SubscriptionEventCallbacks(
            incompatible_qos=incompatible, use_default_callbacks=False))
        return super().create_subscription(msg_type, topic, *args, **kwargs)
