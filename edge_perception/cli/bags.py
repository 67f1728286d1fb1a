"""Subcommands about rosbag2 files: synth-bag, replay."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from edge_perception.cli.arguments import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    resolution,
)

if TYPE_CHECKING:
    from rclpy.executors import Executor

    from edge_perception.tools.bags import BagPlayer


def _synth_bag(args: argparse.Namespace) -> int:
    from edge_perception.tools.bags import write_synthetic_bag

    count = write_synthetic_bag(args.out, frames=args.frames, rate_hz=args.rate,
                                cameras=args.cameras, storage=args.storage,
                                corrupt_every=args.corrupt_every, resolution=args.resolution)
    print(f'wrote {count} messages to {args.out} ({args.storage})')
    return 0


def add_synth_bag(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser('synth-bag', help='write a rosbag2 of a synthetic drive')
    parser.add_argument('out', type=Path, help='bag directory to create')
    parser.add_argument('--frames', type=positive_int, default=300)
    parser.add_argument('--rate', type=positive_float, default=30.0, help='camera rate in Hz')
    parser.add_argument('--cameras', type=int, choices=[1, 2], default=1)
    parser.add_argument('--storage', choices=['sqlite3', 'mcap'], default='sqlite3')
    parser.add_argument('--resolution', type=resolution, default=None, metavar='WxH',
                        help='frame size, e.g. 1280x720 (default 320x240)')
    parser.add_argument('--corrupt-every', type=non_negative_int, default=0,
                        help='make every k-th frame malformed (robustness testing; 0: none)')
    parser.set_defaults(run=_synth_bag)


def _replay(args: argparse.Namespace) -> int:
    import threading
    import time

    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.node import Node

    from edge_perception.tools.bags import BagPlayer

    rclpy.init()
    node = Node('edge_perception_player')
    player: BagPlayer | None = None
    try:
        player = BagPlayer(node, args.bag, rate=args.rate, loop=args.loop,
                           start_offset_s=args.start_offset, restamp=args.restamp)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        delay_until = time.monotonic() + args.delay
        while time.monotonic() < delay_until:  # subscribers discover the publishers first
            executor.spin_once(timeout_sec=0.05)
        if args.wait_for_subscriber:
            _wait_for_subscribers(player, executor, timeout_s=args.wait_for_subscriber)
        threading.Thread(target=player.play, daemon=True).start()
        while not player.done.is_set():
            executor.spin_once(timeout_sec=0.1)
        player.raise_failure()
        print(f'published {player.published} messages from {args.bag}')
        if player.unsent:
            print(f'NOT sent: {dict(player.unsent)} (last error: {player.last_error})')
            return 1
    except (KeyboardInterrupt, ExternalShutdownException):  # SIGINT / SIGTERM: stop here
        if player is not None:
            player.stop()
            player.done.wait(timeout=2.0)  # its thread leaves rclpy before the node goes
            print(f'stopped after {player.published} messages from {args.bag}')
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _wait_for_subscribers(player: BagPlayer, executor: Executor, *, timeout_s: float) -> None:
    """Spin until every image topic of the bag has a subscriber (or ``timeout_s`` passed,
    said on stderr): a reliable subscriber that matches late misses the first frames."""
    import time

    from edge_perception.tools.bags import bag_topics

    images = [player.publishers[topic] for topic, msgtype in bag_topics(player.bag).items()
              if msgtype == 'sensor_msgs/msg/Image' and topic in player.publishers]
    give_up = time.monotonic() + timeout_s
    while not all(publisher.get_subscription_count() for publisher in images):
        if time.monotonic() > give_up:
            print(f'replay: no subscriber after {timeout_s:g} s; playing anyway', file=sys.stderr)
            return
        executor.spin_once(timeout_sec=0.05)


def add_replay(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser('replay', help='play a rosbag2 into the graph (like ros2 bag play)')
    parser.add_argument('bag', type=Path)
    parser.add_argument('--rate', type=positive_float, default=1.0)
    parser.add_argument('--loop', action='store_true')
    parser.add_argument('--start-offset', type=non_negative_float, default=0.0,
                        help='seconds to skip')
    parser.add_argument('--delay', type=non_negative_float, default=0.0,
                        help='seconds between creating the publishers and the first message '
                             '(as ros2 bag play --delay: lets subscribers match first)')
    parser.add_argument('--wait-for-subscriber', type=positive_float, default=None,
                        metavar='SECONDS', help='before the first message, wait up to this '
                        'long until every image topic has a subscriber')
    parser.add_argument('--restamp', action='store_true',
                        help='stamp images with the send time, like a live camera (needed for '
                             'response times in `edge-perception report` of a recording)')
    parser.set_defaults(run=_replay)


