"""The wrong-type subscriber check: counted at once, logged once, by name when discovery knows
it. The graph is a stand-in: real DDS learns a remote node's name at a moment no test controls
(seen in CI: logged as _NODE_NAME_UNKNOWN_ once)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from std_msgs.msg import String

from edge_perception.ros.subscriber_types import (
    NAME_WAIT_CHECKS,
    UNKNOWN_NAME,
    SubscriberTypeCheck,
)

TOPIC = '/perception/traffic_lights'


@dataclass
class Endpoint:
    node_name: str
    node_namespace: str = '/'
    topic_type: str = 'std_msgs/msg/Int32'
    endpoint_gid: bytes = b'\x01' * 16


@dataclass
class Logger:
    lines: list[str] = field(default_factory=list)

    def warning(self, line: str) -> None:
        self.lines.append(line)


@dataclass
class Graph:
    endpoints: list[Endpoint]
    logger: Logger = field(default_factory=Logger)

    def get_subscriptions_info_by_topic(self, topic: str) -> list[Endpoint]:
        return self.endpoints if topic == TOPIC else []

    def get_logger(self) -> Logger:
        return self.logger


def checker(graph: Graph) -> SubscriberTypeCheck:
    node: Any = graph
    return SubscriberTypeCheck(node, {TOPIC: String})


def test_a_subscriber_is_counted_at_once_and_logged_by_name_once_discovery_knows_it() -> None:
    endpoint = Endpoint(UNKNOWN_NAME, node_namespace='_NODE_NAMESPACE_UNKNOWN_')
    graph = Graph([endpoint])
    check = checker(graph)
    check.check()
    assert check.mismatched[TOPIC] == 1
    assert graph.logger.lines == []
    endpoint.node_name, endpoint.node_namespace = 'expects_ints', '/car'
    check.check()
    check.check()
    assert check.mismatched[TOPIC] == 1
    assert len(graph.logger.lines) == 1
    assert '/car/expects_ints' in graph.logger.lines[0]
    assert 'std_msgs/msg/Int32' in graph.logger.lines[0]
    assert 'std_msgs/msg/String' in graph.logger.lines[0]


def test_a_subscriber_whose_name_never_arrives_is_logged_after_waiting() -> None:
    graph = Graph([Endpoint(UNKNOWN_NAME)])
    check = checker(graph)
    for _ in range(NAME_WAIT_CHECKS):
        check.check()
    assert graph.logger.lines == []
    check.check()
    check.check()
    assert len(graph.logger.lines) == 1
    assert UNKNOWN_NAME in graph.logger.lines[0]


def test_subscribers_of_the_right_type_are_neither_counted_nor_logged() -> None:
    graph = Graph([Endpoint('reader', topic_type='std_msgs/msg/String'),
                   Endpoint('other', endpoint_gid=b'\x02' * 16)])
    check = checker(graph)
    check.check()
    assert check.mismatched[TOPIC] == 1
    assert len(graph.logger.lines) == 1
    assert '/other' in graph.logger.lines[0]
