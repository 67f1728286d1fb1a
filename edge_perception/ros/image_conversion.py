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

# Channels per supported 8-bit encoding; anything else is rejected.
CHANNELS = {'bgr8': 3, 'rgb8': 3, 'mono8': 1}
# Largest frame accepted (4K RGB); a larger declared size is refused before allocation.
MAX_PIXELS = 3840 * 2160

BgrImage = npt.NDArray[np.uint8]


class ImageDecodeError(ValueError):
    """An Image message cannot be decoded; ``reason`` names the rule it broke."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ImageFields(Protocol):
    """The fields of sensor_msgs/Image that decoding reads."""

    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: int
    data: Any


def decode_image(msg: ImageFields) -> BgrImage:
    """Return the image as a contiguous HxWx3 BGR uint8 array (a copy, safe to keep).

    :raises ImageDecodeError: for an unsupported encoding or inconsistent sizes.
    """
    channels = CHANNELS.get(msg.encoding)
    if channels is None:
        raise ImageDecodeError(
            'unsupported_encoding',
            f'encoding {msg.encoding!r} is not supported (use one of {sorted(CHANNELS)})',
        )
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageDecodeError('empty_size', f'image size {width}x{height} is empty')
    if height * width > MAX_PIXELS:
        raise ImageDecodeError(
            'oversized', f'image size {width}x{height} exceeds {MAX_PIXELS} pixels'
        )
    if step < width * channels:
        raise ImageDecodeError(
            'step_too_small',
            f'step {step} is smaller than width*channels = {width * channels}',
        )
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size != step * height:
        raise ImageDecodeError(
            'data_size_mismatch',
            f'data has {data.size} bytes, expected step*height = {step * height}',
        )
    rows = data.reshape(height, step)[:, : width * channels]
    pixels = rows.reshape(height, width, channels)
    if msg.encoding == 'rgb8':
        return np.ascontiguousarray(pixels[:, :, ::-1])
    if msg.encoding == 'mono8':
        return np.asarray(cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_GRAY2BGR), np.uint8)
    return np.array(pixels, copy=True)


def encode_bgr8(image: BgrImage, msg: ImageFields) -> None:
    """Fill ``msg`` (a sensor_msgs/Image) with ``image`` as bgr8; header is left to the caller."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'expected an HxWx3 uint8 image, got {image.shape} {image.dtype}')
    msg.encoding = 'bgr8'
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.step = msg.width * 3
    msg.is_bigendian = 0
    msg.data = np.ascontiguousarray(image).tobytes()
