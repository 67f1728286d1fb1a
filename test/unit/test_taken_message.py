"""Camera messages taken serialised: the stamp read from the bytes, the rest built on use."""

from __future__ import annotations

import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from edge_perception.ros.cdr_header import (
    ImageLayout,
    read_image_layout,
    read_stamp_ns,
    with_stamp,
)
from edge_perception.ros.image_conversion import ImageDecodeError
from edge_perception.ros.taken_message import TakenMessage


def image_bytes(sec: int = 5, nanosec: int = 7) -> bytes:
    image = Image(header=Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id='camera'),
                  height=2, width=3, encoding='bgr8', step=9, data=bytes(range(18)))
    return bytes(serialize_message(image))


def test_the_stamp_is_read_and_replaced_in_the_bytes() -> None:
    raw = image_bytes()
    assert read_stamp_ns(raw) == 5_000_000_007
    moved = with_stamp(raw, 1_796_000_000_123_456_789)
    assert moved is not None
    assert read_stamp_ns(moved) == 1_796_000_000_123_456_789
    assert moved[12:] == raw[12:]


@pytest.mark.parametrize(
    'raw', [b'\x00\x01\x00', b'\x00\x03' + bytes(20), b'\x01\x01' + bytes(20)],
    ids=['short', 'parameter-list CDR', 'not an encapsulation'])
def test_bytes_that_are_not_plain_cdr_have_no_stamp_to_read(raw: bytes) -> None:
    assert read_stamp_ns(raw) is None
    assert with_stamp(raw, 1) is None


def test_a_message_is_built_once_on_first_use() -> None:
    taken = TakenMessage(msg_type=Image, raw=image_bytes(sec=9))
    assert taken.stamp_ns == 9_000_000_007
    first = taken.message()
    assert (first.width, first.header.frame_id) == (3, 'camera')
    assert taken.message() is first


def test_damaged_bytes_keep_their_stamp_and_fail_by_name_when_built() -> None:
    """A frame whose stamp is intact but whose body is cut releases nothing: building it
    raises the decode error the task nodes count, naming the type."""
    raw = image_bytes(sec=11)
    taken = TakenMessage(msg_type=Image, raw=raw[:30])
    assert taken.stamp_ns == 11_000_000_007
    with pytest.raises(ImageDecodeError, match='30 bytes are not a message of type Image') as c:
        taken.message()
    assert c.value.reason == 'undecodable'


def test_a_deserialised_message_is_taken_as_it_is() -> None:
    image = Image(header=Header(stamp=Time(sec=3, nanosec=1)))
    taken = TakenMessage.of(image)
    assert taken.message() is image
    assert taken.stamp_ns == 3_000_000_001
    with pytest.raises(ValueError, match='raw bytes or of a message'):
        TakenMessage(msg_type=Image)


@pytest.mark.parametrize(('frame_id', 'encoding'), [
    ('camera', 'bgr8'), ('', 'mono16'), ('front_left', 'rgb8'), ('abc', '32FC1')])
def test_an_image_s_layout_is_read_from_its_bytes(frame_id: str, encoding: str) -> None:
    """Whatever the strings' lengths (CDR pads after them), the layout matches the message."""
    image = Image(header=Header(frame_id=frame_id), height=2, width=3, encoding=encoding,
                  is_bigendian=1, step=9, data=bytes(18))
    raw = bytes(serialize_message(image))
    assert read_image_layout(raw) == ImageLayout(encoding, 2, 3, 9, 1, 18)
    assert read_image_layout(raw[:40]) is None  # cut short: not a layout to trust


def test_a_bad_frame_is_found_without_building_it() -> None:
    """Checked from its bytes: a wrong encoding or a short data field is named as the
    decoder would name it; a frame cut short is built, and fails by name."""
    image = Image(header=Header(frame_id='camera'), height=2, width=3, encoding='yuv9',
                  step=9, data=bytes(18))
    with pytest.raises(ImageDecodeError) as caught:
        TakenMessage(msg_type=Image, raw=bytes(serialize_message(image))).check_image()
    assert caught.value.reason == 'unsupported_encoding'
    image.encoding, image.data = 'bgr8', bytes(10)
    with pytest.raises(ImageDecodeError) as caught:
        TakenMessage(msg_type=Image, raw=bytes(serialize_message(image))).check_image()
    assert caught.value.reason == 'data_too_short'
    image.data = bytes(18)
    whole = bytes(serialize_message(image))
    TakenMessage(msg_type=Image, raw=whole).check_image()  # a good frame passes
    with pytest.raises(ImageDecodeError) as caught:
        TakenMessage(msg_type=Image, raw=whole[:50]).check_image()
    assert caught.value.reason == 'undecodable'
