"""One decode and one detector input per camera message, however many tasks receive it."""

from __future__ import annotations

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image

from edge_perception.ros.frame_sharing import SharedFrames
from edge_perception.ros.image_conversion import ImageDecodeError, encode_bgr8
from edge_perception.synthetic.scenes import generate_frame
from edge_perception.tasks.detector_decoding import detector_input
from edge_perception.tasks.frames import Frame


def camera_message(index: int, *, sec: int = 7) -> bytes:
    msg = Image()
    encode_bgr8(generate_frame('test', index).image, msg)
    msg.header.stamp.sec, msg.header.frame_id = sec, 'camera'
    return bytes(serialize_message(msg))


def copy_of(raw: bytes) -> Image:
    """What one more subscription receives: its own deserialised copy."""
    return deserialize_message(raw, Image)


def test_frame_prepares_the_detector_input_once_and_read_only() -> None:
    image = generate_frame('test', 0).image.copy()
    frame = Frame(image)
    first = frame.detector_input
    assert frame.detector_input is first
    np.testing.assert_array_equal(first, detector_input(image))
    with pytest.raises(ValueError, match='read-only'):
        frame.image[0, 0, 0] = 1  # tasks share it: nobody may draw on it
    with pytest.raises(ValueError, match='read-only'):
        first[0, 0, 0, 0] = 1.0


def test_copies_of_one_message_share_one_frame() -> None:
    frames, raw = SharedFrames(), camera_message(0)
    first = frames.frame('/camera', copy_of(raw))
    assert frames.frame('/camera', copy_of(raw)) is first
    assert (frames.decoded, frames.shared) == (1, 1)
    assert frames.frame('/other_camera', copy_of(raw)) is not first  # topics are separate


def test_same_header_with_other_pixels_is_another_frame() -> None:
    """A camera that never sets stamps: equal headers, different images."""
    frames = SharedFrames()
    first = frames.frame('/camera', copy_of(camera_message(0, sec=0)))
    second = frames.frame('/camera', copy_of(camera_message(1, sec=0)))
    assert second is not first
    assert not np.array_equal(first.image, second.image)


def test_a_bad_message_is_refused_for_every_task() -> None:
    frames, bad = SharedFrames(), Image(encoding='yuv422', height=2, width=2, step=4,
                                        data=bytes(8))
    for _ in range(2):  # never cached: each node sees the error and counts it
        with pytest.raises(ImageDecodeError):
            frames.frame('/camera', bad)
    assert frames.decoded == 0
