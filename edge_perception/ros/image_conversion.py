"""sensor_msgs/Image <-> numpy BGR arrays, without cv_bridge.

Decoding checks every field against the others before touching the data, so a malformed
message raises :class:`ImageDecodeError` with a short ``reason`` (used as a counter key in
diagnostics) instead of crashing or reading out of bounds.
"""

from __future__ import annotations

from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

# Supported encodings: (channels, bytes per channel). Colour frames feed the detector as
# they are; single-channel 16-bit and float frames (mono / depth-like cameras) become grey.
FORMATS = {'bgr8': (3, 1), 'rgb8': (3, 1), 'mono8': (1, 1), 'mono16': (1, 2), '16UC1': (1, 2),
           '32FC1': (1, 4)}
# Encodings whose pixels themselves can be bad (NaN, infinite): only decoding tells.
PIXELS_CHECKED = frozenset({'32FC1'})
# Largest frame accepted (4K RGB); a larger declared size is refused before allocation.
MAX_PIXELS = 3840 * 2160

BgrImage = npt.NDArray[np.uint8]


class ImageDecodeError(ValueError):
    """An Image message cannot be decoded; ``reason`` names the rule it broke."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ImageLayoutFields(Protocol):
    """The fields of sensor_msgs/Image that say how its data is laid out."""

    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: int


class ImageFields(ImageLayoutFields, Protocol):
    """The fields of sensor_msgs/Image that decoding reads."""

    data: Any


def check_image(msg: ImageLayoutFields, data_size: int) -> None:
    """Whether ``msg``'s fields and its ``data_size`` bytes make an image decode_image can
    read (every check but the pixels' own: that is decoding).

    :raises ImageDecodeError: for an unsupported encoding, inconsistent sizes or a bad
        endianness flag.
    """
    fmt = FORMATS.get(msg.encoding)
    if fmt is None:
        raise ImageDecodeError(
            'unsupported_encoding',
            f'encoding {msg.encoding!r} is not supported (use one of {sorted(FORMATS)})',
        )
    channels, depth = fmt
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageDecodeError('empty_size', f'image size {width}x{height} is empty')
    if height * width > MAX_PIXELS:
        raise ImageDecodeError(
            'oversized', f'image size {width}x{height} exceeds {MAX_PIXELS} pixels'
        )
    if msg.is_bigendian not in (0, 1):
        raise ImageDecodeError('bad_endianness',
                               f'is_bigendian = {msg.is_bigendian} must be 0 or 1')
    row_bytes = width * channels * depth
    if step < row_bytes:
        raise ImageDecodeError(
            'step_too_small',
            f'step {step} is smaller than width*channels*bytes = {row_bytes}',
        )
    if data_size != step * height:
        raise ImageDecodeError(
            'data_too_short' if data_size < step * height else 'data_too_long',
            f'data has {data_size} bytes, expected step*height = {step * height}',
        )


def decode_image(msg: ImageFields) -> BgrImage:
    """Return the image as a contiguous HxWx3 BGR uint8 array (a copy, safe to keep).

    :raises ImageDecodeError: as :func:`check_image`, or for non-finite float pixels.
    """
    data = np.frombuffer(msg.data, dtype=np.uint8)
    check_image(msg, data.size)
    channels, depth = FORMATS[msg.encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * channels * depth
    rows = data.reshape(height, step)[:, :row_bytes]
    if depth == 1:
        pixels = rows.reshape(height, width, channels)
        if msg.encoding == 'rgb8':
            return np.ascontiguousarray(pixels[:, :, ::-1])
        if msg.encoding == 'bgr8':
            return np.array(pixels, copy=True)
        grey = pixels[:, :, 0]
    else:
        grey = _to_grey(rows, msg.encoding, depth, big_endian=bool(msg.is_bigendian))
    return np.asarray(cv2.cvtColor(np.ascontiguousarray(grey), cv2.COLOR_GRAY2BGR), np.uint8)


def _to_grey(rows: npt.NDArray[np.uint8], encoding: str, depth: int, *,
             big_endian: bool) -> npt.NDArray[np.uint8]:
    """16-bit (top 8 bits) or float (0..1 scaled to 0..255) single-channel pixels as grey."""
    order = '>' if big_endian else '<'
    kind = 'f' if encoding in PIXELS_CHECKED else 'u'
    values = np.ascontiguousarray(rows).view(f'{order}{kind}{depth}')
    if kind == 'u':
        return np.asarray(values >> 8, dtype=np.uint8)
    if not np.isfinite(values).all():
        raise ImageDecodeError('non_finite_pixels', 'float image has NaN or infinite pixels')
    return np.asarray(np.clip(values, 0.0, 1.0) * 255, dtype=np.uint8)


def encode_bgr8(image: BgrImage, msg: ImageFields) -> None:
    """Fill ``msg`` (a sensor_msgs/Image) with ``image`` as bgr8; header is left to the caller."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'expected an HxWx3 uint8 image, got {image.shape} {image.dtype}')
    msg.encoding = 'bgr8'
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.step = msg.width * 3
    msg.is_bigendian = 0
    msg.data = np.ascontiguousarray(image).tobytes()
