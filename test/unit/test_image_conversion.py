"""Image decoding without cv_bridge: supported encodings and every rejection reason."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from edge_perception.ros.image_conversion import ImageDecodeError, decode_image, encode_bgr8


@dataclass
class FakeImage:
    """The sensor_msgs/Image fields decoding reads (isolates the pure conversion logic)."""

    encoding: str
    height: int
    width: int
    step: int
    data: bytes
    is_bigendian: int = 0


def pattern(height: int = 4, width: int = 5) -> np.ndarray:
    return np.arange(height * width * 3, dtype=np.uint8).reshape(height, width, 3)


def test_bgr8_round_trip() -> None:
    image = pattern()
    msg = FakeImage('', 0, 0, 0, b'')
    encode_bgr8(image, msg)
    assert (msg.encoding, msg.height, msg.width, msg.step) == ('bgr8', 4, 5, 15)
    np.testing.assert_array_equal(decode_image(msg), image)


def test_rgb8_is_swapped_to_bgr() -> None:
    image = pattern()
    msg = FakeImage('rgb8', 4, 5, 15, image[:, :, ::-1].tobytes())
    np.testing.assert_array_equal(decode_image(msg), image)


def test_mono8_becomes_three_equal_channels() -> None:
    grey = np.arange(20, dtype=np.uint8).reshape(4, 5)
    decoded = decode_image(FakeImage('mono8', 4, 5, 5, grey.tobytes()))
    assert decoded.shape == (4, 5, 3)
    for channel in range(3):
        np.testing.assert_array_equal(decoded[:, :, channel], grey)


def test_row_padding_is_skipped() -> None:
    image = pattern()
    padded = np.zeros((4, 20), np.uint8)
    padded[:, :15] = image.reshape(4, 15)
    np.testing.assert_array_equal(decode_image(FakeImage('bgr8', 4, 5, 20, padded.tobytes())),
                                  image)


def test_decoded_image_does_not_alias_the_message_buffer() -> None:
    data = bytearray(pattern().tobytes())
    decoded = decode_image(FakeImage('bgr8', 4, 5, 15, bytes(data)))
    decoded[0, 0, 0] = 255
    assert decoded.flags.writeable


@pytest.mark.parametrize(('msg', 'reason', 'match'), [
    (FakeImage('yuv422', 4, 5, 10, bytes(40)), 'unsupported_encoding', r"encoding 'yuv422'"),
    (FakeImage('16UC1', 4, 5, 10, bytes(40)), 'unsupported_encoding', r"encoding '16UC1'"),
    (FakeImage('32FC1', 4, 5, 20, bytes(80)), 'unsupported_encoding', r"encoding '32FC1'"),
    (FakeImage('bgr8', 0, 5, 15, b''), 'empty_size', r'image size 5x0 is empty'),
    (FakeImage('bgr8', 4, 5, 14, bytes(56)), 'step_too_small',
     r'step 14 is smaller than width\*channels = 15'),
    (FakeImage('bgr8', 4, 5, 15, bytes(59)), 'data_size_mismatch', r'59 bytes, expected .* 60'),
    (FakeImage('bgr8', 4, 5, 15, bytes(61)), 'data_size_mismatch', r'61 bytes, expected .* 60'),
    (FakeImage('bgr8', 100_000, 100_000, 300_000, b''), 'oversized', r'exceeds'),
])
def test_malformed_images_are_rejected_with_a_reason(msg: FakeImage, reason: str,
                                                     match: str) -> None:
    with pytest.raises(ImageDecodeError, match=match) as caught:
        decode_image(msg)
    assert caught.value.reason == reason


def test_encode_refuses_non_bgr_arrays() -> None:
    with pytest.raises(ValueError, match=r'expected an HxWx3 uint8 image'):
        encode_bgr8(np.zeros((4, 5), np.uint8), FakeImage('', 0, 0, 0, b''))
