"""A serialised message's std_msgs/Header stamp, read or replaced without deserialising it.

Plain CDR, the encapsulation ROS 2's DDS layers write for ROS types, starts with a 4-byte
encapsulation header (its second byte: 0 big-endian, 1 little-endian); a message whose first
field is a std_msgs/Header (sensor_msgs/Image, most sensor data) continues with the stamp:
int32 sec, uint32 nanosec. Any other encapsulation is left to a full deserialisation.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_BYTE_ORDER = {0: '>', 1: '<'}  # CDR_BE, CDR_LE
_STAMP_END = 12  # encapsulation (4 bytes) + sec (4) + nanosec (4)


def _order(raw: bytes) -> str | None:
    if len(raw) < _STAMP_END or raw[0] != 0:
        return None
    return _BYTE_ORDER.get(raw[1])


def read_stamp_ns(raw: bytes) -> int | None:
    """The header stamp of serialised ``raw`` in ns; None where it is not plain CDR."""
    order = _order(raw)
    if order is None:
        return None
    sec, nanosec = struct.unpack_from(f'{order}iI', raw, 4)
    return int(sec) * 1_000_000_000 + int(nanosec)


def with_stamp(raw: bytes, stamp_ns: int) -> bytes | None:
    """Serialised ``raw`` with its header stamp set to ``stamp_ns`` (one copy of the bytes);
    None where it is not plain CDR."""
    order = _order(raw)
    if order is None:
        return None
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    return b''.join((raw[:4], struct.pack(f'{order}iI', sec, nanosec),
                     memoryview(raw)[_STAMP_END:]))


@dataclass
class ImageLayout:
    """The fields of a serialised sensor_msgs/Image that checking it needs; ``data_size``
    is the length its data sequence declares."""

    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: int
    data_size: int


def read_image_layout(raw: bytes) -> ImageLayout | None:
    """The layout of serialised Image ``raw``, read from its first ~60 bytes; None where it
    is not plain CDR, or the bytes end before the layout or the data it declares (a message
    cut short: its full deserialisation says what is wrong)."""
    order = _order(raw)
    if order is None:
        return None
    # CDR aligns each field to its size, counted from the end of the encapsulation header.
    reader = _Reader(raw, order, _STAMP_END)
    try:
        reader.string()  # header.frame_id
        height, width = reader.uint32(), reader.uint32()
        encoding = reader.string()
        is_bigendian = reader.uint8()
        step, data_size = reader.uint32(), reader.uint32()
    except (struct.error, UnicodeDecodeError, IndexError):
        return None
    if reader.position + data_size > len(raw):
        return None
    return ImageLayout(encoding, height, width, step, is_bigendian, data_size)


class _Reader:
    def __init__(self, raw: bytes, order: str, position: int) -> None:
        self.raw, self.order, self.position = raw, order, position

    def _align(self, size: int) -> None:
        self.position += -(self.position - 4) % size

    def uint32(self) -> int:
        self._align(4)
        (value,) = struct.unpack_from(f'{self.order}I', self.raw, self.position)
        self.position += 4
        return int(value)

    def uint8(self) -> int:
        value = self.raw[self.position]
        self.position += 1
        return value

    def string(self) -> str:
        length = self.uint32()  # with the terminating NUL
        text = self.raw[self.position:self.position + length]
        if len(text) != length:
            raise IndexError('string beyond the end of the message')
        self.position += length
        return text.rstrip(b'\0').decode()
