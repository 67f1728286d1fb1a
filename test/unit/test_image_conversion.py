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


@pytest.mark.parametrize('big_endian', [0, 1])
def test_16_bit_grey_honours_the_endianness_flag(big_endian: int) -> None:
    values = np.array([[0x1234, 0xFF00, 0x00FF]], np.dtype('>u2' if big_endian else '<u2'))
    decoded = decode_image(FakeImage('mono16', 1, 3, 6, values.tobytes(), big_endian))
    np.testing.assert_array_equal(decoded[0, :, 0], [0x12, 0xFF, 0x00])


def test_float_grey_is_scaled_from_unit_range() -> None:
    values = np.array([[0.0, 0.5, 1.0, 2.0]], np.float32)
    decoded = decode_image(FakeImage('32FC1', 1, 4, 16, values.tobytes()))
    np.testing.assert_array_equal(decoded[0, :, 1], [0, 127, 255, 255])


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
    (FakeImage('bgra16', 4, 5, 40, bytes(160)), 'unsupported_encoding', r"encoding 'bgra16'"),
    (FakeImage('bgr8', 0, 5, 15, b''), 'empty_size', r'image size 5x0 is empty'),
    (FakeImage('bgr8', 4, 5, 14, bytes(56)), 'step_too_small',
     r'step 14 is smaller than width\*channels\*bytes = 15'),
    (FakeImage('mono16', 4, 5, 9, bytes(36)), 'step_too_small', r'step 9 is smaller .* = 10'),
    (FakeImage('bgr8', 4, 5, 15, bytes(59)), 'data_too_short', r'59 bytes, expected .* 60'),
    (FakeImage('bgr8', 4, 5, 15, bytes(61)), 'data_too_long', r'61 bytes, expected .* 60'),
    (FakeImage('bgr8', 4, 5, 15, bytes(60), is_bigendian=7), 'bad_endianness',
     r'is_bigendian = 7 must be 0 or 1'),
    (FakeImage('32FC1', 1, 2, 8, np.array([0.5, np.nan], np.float32).tobytes()),
     'non_finite_pixels', r'NaN or infinite'),
    (FakeImage('32FC1', 1, 2, 8, np.array([np.inf, 0.5], np.float32).tobytes()),
     'non_finite_pixels', r'NaN or infinite'),
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
