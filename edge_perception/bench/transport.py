"""Camera frames over DDS between two processes on one host: how many of them arrive.

A publisher process sends frames of each size at a camera's rate as drivers do (reliable
with depth 10, as most do, or best effort, as the sensor-data profile does); a subscriber
process takes them with a container subscription's QoS. FastDDS fragments a frame larger
than its transport's message size, and a best-effort frame that loses a fragment, or does not
fit the publisher's shared-memory segment, is lost whole. ``python -m
edge_perception.bench.transport publish|subscribe ...`` runs one side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edge_perception.core.config import InputQos
from edge_perception.figures import pyplot, save
from edge_perception.ros.cdr_header import read_stamp_ns

if TYPE_CHECKING:
    from rclpy.qos import QoSProfile

SIZES = ((320, 240), (640, 480), (1280, 720), (1920, 1080))
PROFILE = Path(__file__).resolve().parents[2] / 'config' / 'fastdds_large_frames.xml'
_IDLE_S = 2.0  # the subscriber stops this long after the last frame


@dataclass(frozen=True)
class Case:
    """One way of carrying frames: the publisher's reliability, the subscription's QoS
    (None: rclpy's sensor-data profile, the container's before 2026-12) and whether both
    sides run with the large-frames FastDDS profile."""

    publisher: str
    subscription: InputQos | None
    profile: bool = False

    @property
    def name(self) -> str:
        subscription = ('sensor-data (best effort, depth 5)' if self.subscription is None
                        else f'{self.subscription.reliability}, depth {self.subscription.depth}')
        return (f'{self.publisher} camera -> {subscription}'
                + (', large-frames profile' if self.profile else ''))


CASES = (
    Case('best_effort', None),
    Case('reliable', None),
    Case('reliable', InputQos()),
    Case('best_effort', InputQos('best_effort', 5), profile=True),
    Case('reliable', InputQos('best_effort', 5), profile=True),
)


@dataclass(frozen=True)
class TransportRow:
    case: Case
    width: int
    height: int
    sent: int
    received: int


def measure(*, frames: int, rate_hz: float = 30.0, sizes: Sequence[tuple[int, int]] = SIZES,
            cases: Sequence[Case] = CASES,
            progress: Callable[[str], None] = print) -> list[TransportRow]:
    """Frames received of ``frames`` sent, for every case and size."""
    rows = []
    for case in cases:
        for width, height in sizes:
            received = _one_run(case, width, height, frames=frames, rate_hz=rate_hz)
            progress(f'{case.name}, {width}x{height}: {received}/{frames}')
            rows.append(TransportRow(case, width, height, frames, received))
    return rows


def _one_run(case: Case, width: int, height: int, *, frames: int, rate_hz: float) -> int:
    topic = f'/transport_probe_{uuid.uuid4().hex[:8]}'
    environment = dict(os.environ)
    environment.pop('FASTDDS_DEFAULT_PROFILES_FILE', None)
    if case.profile:
        environment['FASTDDS_DEFAULT_PROFILES_FILE'] = str(PROFILE)
    command = [sys.executable, '-m', 'edge_perception.bench.transport']
    qos = case.subscription
    subscriber = subprocess.Popen(
        [*command, 'subscribe', topic, '--reliability',
         'sensor_data' if qos is None else qos.reliability,
         '--depth', str(5 if qos is None else qos.depth), '--timeout', str(frames / rate_hz + 20)],
        env=environment, stdout=subprocess.PIPE, text=True)
    try:
        subprocess.run([*command, 'publish', topic, '--reliability', case.publisher,
                        '--size', f'{width}x{height}', '--frames', str(frames),
                        '--rate', str(rate_hz)],
                       env=environment, check=True, timeout=frames / rate_hz + 30)
        output, _ = subscriber.communicate(timeout=frames / rate_hz + 30)
    finally:
        subscriber.kill()
    return int(json.loads(output.strip().splitlines()[-1])['received'])


def format_rows(rows: Sequence[TransportRow]) -> str:
    sizes = sorted({(row.width, row.height) for row in rows})
    cases = list(dict.fromkeys(row.case for row in rows))
    name_width = max(len(case.name) for case in cases) + 1
    lines = ['frames received / sent, one host, publisher and subscriber in two processes',
             f'{"camera -> subscription":<{name_width}}'
             + ''.join(f'{f"{w}x{h}":>11}' for w, h in sizes)]
    for case in cases:
        counts = {(row.width, row.height): row for row in rows if row.case == case}
        lines.append(f'{case.name:<{name_width}}' + ''.join(
            f'{f"{counts[size].received}/{counts[size].sent}":>11}' for size in sizes))
    return '\n'.join(lines)


def plot(rows: Sequence[TransportRow], path: Path) -> None:
    """Share of frames received per case (bars) and frame size (groups)."""
    plt = pyplot()
    sizes = sorted({(row.width, row.height) for row in rows})
    cases = list(dict.fromkeys(row.case for row in rows))
    figure, axes = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(cases)
    for index, case in enumerate(cases):
        shares = [next(r.received / r.sent for r in rows
                       if r.case == case and (r.width, r.height) == size) for size in sizes]
        axes.bar([i + index * width for i in range(len(sizes))], shares, width,
                 label=case.name)
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(sizes))],
                    [f'{w}x{h}' for w, h in sizes])
    axes.set_ylabel('frames received / sent')
    axes.set_ylim(0, 1.05)
    axes.legend(fontsize=7, loc='lower left')
    axes.set_title('Camera frames between two processes (FastDDS, one host)')
    save(figure, path)


def _qos(reliability: str, depth: int) -> QoSProfile:
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    if reliability == 'sensor_data':
        return qos_profile_sensor_data
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                      else ReliabilityPolicy.BEST_EFFORT)


def _publish(args: argparse.Namespace) -> None:
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node('transport_probe_camera')
    publisher = node.create_publisher(Image, args.topic, _qos(args.reliability, 10))
    give_up = time.monotonic() + 20
    while publisher.get_subscription_count() == 0 and time.monotonic() < give_up:
        time.sleep(0.05)
    time.sleep(0.5)  # the subscriber's side of discovery
    width, height = (int(v) for v in args.size.split('x'))
    msg = Image(width=width, height=height, encoding='rgb8', step=width * 3,
                data=bytes(width * height * 3))
    start = time.monotonic()
    for index in range(args.frames):
        msg.header.stamp.sec = index + 1  # which frame: the subscriber reads it from the bytes
        publisher.publish(msg)
        time.sleep(max(0.0, start + (index + 1) / args.rate - time.monotonic()))
    time.sleep(1.0)  # reliable retransmissions
    node.destroy_node()
    rclpy.shutdown()


def _subscribe(args: argparse.Namespace) -> None:
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node('transport_probe_container')
    received: set[int | None] = set()
    last = [time.monotonic()]

    def take(raw: bytes) -> None:
        # Serialised, as the container takes frames: deserialising a 1080p Image in Python
        # kept this probe from taking 3 of 30 frames in time on a 2-core VM, which counted
        # as frames DDS lost.
        received.add(read_stamp_ns(raw))
        last[0] = time.monotonic()

    node.create_subscription(Image, args.topic, take, _qos(args.reliability, args.depth),
                             raw=True)
    give_up = time.monotonic() + args.timeout
    camera_seen = False
    while time.monotonic() < give_up:
        rclpy.spin_once(node, timeout_sec=0.1)
        cameras = node.count_publishers(args.topic)
        camera_seen = camera_seen or cameras > 0
        if (received or (camera_seen and not cameras)) and time.monotonic() - last[0] > _IDLE_S:
            break  # the camera is done (or gone) and nothing came for a while
    print(json.dumps({'received': len(received)}))
    node.destroy_node()
    rclpy.shutdown()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description='one side of the camera transport benchmark')
    parser.add_argument('role', choices=['publish', 'subscribe'])
    parser.add_argument('topic')
    parser.add_argument('--reliability', choices=['reliable', 'best_effort', 'sensor_data'])
    parser.add_argument('--depth', type=int, default=1)
    parser.add_argument('--size', default='640x480')
    parser.add_argument('--frames', type=int, default=30)
    parser.add_argument('--rate', type=float, default=30.0)
    parser.add_argument('--timeout', type=float, default=30.0)
    args = parser.parse_args(argv)
    (_publish if args.role == 'publish' else _subscribe)(args)


if __name__ == '__main__':
    main()
