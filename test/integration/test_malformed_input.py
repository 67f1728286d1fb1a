"""Fuzz-style: malformed camera frames over real DDS into the real container.

Every kind of bad frame is refused with its own reason, counted per task in /diagnostics
(read back by a separate subscriber), the good frame after it is still processed (released
as a job: whether that job meets its deadline is the executor tests' business), and the
process's memory stays bounded while hundreds of bad frames (some declaring 4K+ sizes) go by.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.node import Node
from sensor_msgs.msg import Image

from edge_perception.ros.container import PerceptionContainer
from edge_perception.ros.image_conversion import encode_bgr8
from edge_perception.synthetic.scenes import generate_frame
from edge_perception.tools.lane_processes import rss_mb

from .conftest import spin_until

Mutation = Callable[[Image], None]


def _set(**fields: object) -> Mutation:
    def mutate(msg: Image) -> None:
        for name, value in fields.items():
            setattr(msg, name, value)
    return mutate


def _floats(value: float) -> Mutation:
    def mutate(msg: Image) -> None:
        pixels = np.full((msg.height, msg.width), 0.5, np.float32)
        pixels[3, 5] = value
        msg.encoding, msg.step, msg.data = '32FC1', msg.width * 4, pixels.tobytes()
    return mutate


def _shift_stamp(seconds: float) -> Mutation:
    def mutate(msg: Image) -> None:
        total = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        total += round(seconds * 1e9)
        msg.header.stamp = Time(sec=total // 1_000_000_000, nanosec=total % 1_000_000_000)
    return mutate


# (reason counted in /diagnostics, how the frame is broken)
BAD_FRAMES: list[tuple[str, Mutation]] = [
    ('unsupported_encoding', _set(encoding='yuv422')),
    ('unsupported_encoding', _set(encoding='')),
    ('empty_size', _set(width=0)),
    ('empty_size', _set(height=0)),
    ('step_too_small', _set(step=320)),
    ('data_too_short', lambda m: _set(data=bytes(m.data)[:1000])(m)),
    ('data_too_long', lambda m: _set(data=bytes(m.data) + bytes(999))(m)),
    ('oversized', _set(width=100_000, height=100_000, step=300_000)),
    ('bad_endianness', _set(is_bigendian=2)),
    ('step_too_small', _set(encoding='mono16', step=320)),  # 16-bit frame, 8-bit step
    ('non_finite_pixels', _floats(float('nan'))),
    ('non_finite_pixels', _floats(float('inf'))),
    ('future_stamp', _shift_stamp(3600.0)),
    ('out_of_order_stamp', lambda msg: None),  # stamped before the last good frame: below
]
OUT_OF_ORDER = BAD_FRAMES[-1][1]
FRAME_SPACING_NS = 300_000_000  # the longest task period here, with room


class Camera:
    def __init__(self, context: Context, container: PerceptionContainer) -> None:
        self.node = Node('fuzz_camera', context=context)
        self.publisher = self.node.create_publisher(Image, '/camera/image_raw', 50)
        self.arrays: list[DiagnosticArray] = []
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self.arrays.append, 10)
        container.executor.add_node(self.node)
        self.image = generate_frame('test', 5).image
        # Stamps start a minute back and advance a task period a frame: the scheduler judges
        # periods by stamps, so frames published back to back are still a period apart.
        self.last_ns = time.time_ns() - 60 * 1_000_000_000
        # The container subscribes once per camera topic for all its task nodes.
        spin_until(container.executor, lambda: self.publisher.get_subscription_count() >= 1)

    def frame(self, mutate: Mutation | None = None) -> Image:
        """A frame stamped a period after the previous one (OUT_OF_ORDER: 1 ms before it)."""
        stamp = (self.last_ns - 1_000_000 if mutate is OUT_OF_ORDER
                 else self.last_ns + FRAME_SPACING_NS)
        self.last_ns = max(stamp, self.last_ns)
        msg = Image()
        encode_bgr8(self.image, msg)
        msg.header.stamp = Time(sec=stamp // 1_000_000_000, nanosec=stamp % 1_000_000_000)
        if mutate is not None:
            mutate(msg)
        return msg


def released(container: PerceptionContainer) -> list[int]:
    return [container.scheduler.stats[node.task.name].released for node in container.nodes]


def test_every_malformed_frame_is_counted_and_the_next_good_one_processed(
        ros_context: Context, container: PerceptionContainer) -> None:
    camera = Camera(ros_context, container)
    executor = container.executor
    expected: dict[str, int] = {}
    for reason, mutate in BAD_FRAMES:
        before = released(container)
        camera.publisher.publish(camera.frame(mutate))
        expected[reason] = expected.get(reason, 0) + 1
        camera.publisher.publish(camera.frame())
        spin_until(executor, lambda before=before: (
            all(n > b for n, b in zip(released(container), before, strict=True))
            and all(node.bad_frames == expected for node in container.nodes)))
    # A legal but unusual frame (16-bit, big-endian) is decoded, not counted as bad.
    mono16 = camera.frame()
    grey = (np.asarray(camera.image).mean(axis=2) * 256).astype('>u2')
    mono16.encoding, mono16.is_bigendian, mono16.step = 'mono16', 1, mono16.width * 2
    mono16.data = grey.tobytes()
    before = released(container)
    camera.publisher.publish(mono16)
    spin_until(executor, lambda: all(
        n > b for n, b in zip(released(container), before, strict=True)))
    assert all(node.bad_frames == expected for node in container.nodes)

    camera.arrays.clear()
    container.publish_diagnostics()
    spin_until(executor, lambda: bool(camera.arrays))
    for node in container.nodes:
        (status,) = [s for s in camera.arrays[-1].status
                     if s.name == f'edge_perception: {node.task.name}']
        values = {kv.key: kv.value for kv in status.values}
        assert values['bad_frames'] == str(len(BAD_FRAMES))
        for reason, count in expected.items():
            assert values[f'bad_frames_{reason}'] == str(count)
    assert len(BAD_FRAMES) >= 12  # kinds of malformed frames fed
    assert len(expected) == 10  # distinct reasons counted


def test_memory_stays_bounded_under_a_flood_of_bad_frames(
        ros_context: Context, container: PerceptionContainer) -> None:
    camera = Camera(ros_context, container)
    executor = container.executor
    frames = [camera.frame(mutate) for _, mutate in BAD_FRAMES[:9]]  # decode-time kinds

    def bad_total() -> int:
        return sum(sum(node.bad_frames.values()) for node in container.nodes)

    def flood(count: int) -> None:
        for index in range(count):  # one at a time: the sensor QoS may drop a burst
            target = bad_total() + len(container.nodes)
            camera.publisher.publish(frames[index % len(frames)])
            spin_until(executor, lambda target=target: bad_total() >= target)

    flood(100)  # warm-up: DDS buffers, allocator pools
    before = rss_mb(os.getpid())
    flood(400)
    grown = rss_mb(os.getpid()) - before
    assert grown < 40, f'RSS grew by {grown:.1f} MB over 400 bad frames'
    camera.publisher.publish(camera.frame())
    spin_until(executor, lambda: all(n >= 1 for n in released(container)))
