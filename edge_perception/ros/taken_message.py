"""A camera message as the DeadlineExecutor takes it: serialised, deserialised on first use.

Taking a 640x480 Image deserialised costs the spinning thread ~0.25 ms a frame; most frames
of a fast camera open no task's period and are only counted. Taken serialised, a frame's
stamp and layout are read from its bytes (what releasing and checking it need) and the
message is built only for a frame that releases a job, once for all the tasks it feeds.
"""

from __future__ import annotations

from typing import Any

from rclpy.serialization import deserialize_message

from edge_perception.ros.cdr_header import read_image_layout, read_stamp_ns
from edge_perception.ros.image_conversion import (
    PIXELS_CHECKED,
    ImageDecodeError,
    check_image,
    decode_image,
)


class TakenMessage:
    """``raw`` bytes of a ``msg_type`` message (or an already deserialised ``message``)."""

    def __init__(self, *, msg_type: type, raw: bytes | None = None,
                 message: Any = None) -> None:
        if (raw is None) == (message is None):
            raise ValueError('a TakenMessage is made of raw bytes or of a message')
        self.msg_type = msg_type
        self.raw = raw
        self._message = message
        self._stamp_ns = None if raw is None else read_stamp_ns(raw)

    @classmethod
    def of(cls, message: Any) -> TakenMessage:
        """A message a stock executor's callback received, deserialised already."""
        return cls(msg_type=type(message), message=message)

    @property
    def stamp_ns(self) -> int:
        """The header stamp (0: none); deserialises only where the bytes are not plain CDR.

        :raises ImageDecodeError: 'undecodable', when the message cannot be deserialised.
        """
        if self._stamp_ns is None:
            stamp = self.message().header.stamp
            self._stamp_ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
        return self._stamp_ns

    def check_image(self) -> None:
        """Whether the Image can be decoded, read from the bytes where they are plain CDR
        (float images are decoded: only their pixels show a NaN): every frame is checked,
        only released ones built.

        :raises ImageDecodeError: naming what is wrong.
        """
        layout = (None if self.raw is None or self._message is not None
                  else read_image_layout(self.raw))
        if layout is not None:
            check_image(layout, layout.data_size)
            if layout.encoding not in PIXELS_CHECKED:
                return
        message = self.message()
        if message.encoding in PIXELS_CHECKED:
            decode_image(message)  # float pixels: only decoding finds a NaN
        else:
            check_image(message, len(message.data))

    def message(self) -> Any:
        """The deserialised message, built on the first call.

        :raises ImageDecodeError: 'undecodable', naming the type and size, when the bytes
            are not a ``msg_type`` (a publisher of another type, a damaged message).
        """
        if self._message is None:
            assert self.raw is not None
            try:
                self._message = deserialize_message(self.raw, self.msg_type)
            except Exception as err:  # rclpy raises several kinds on malformed CDR
                raise ImageDecodeError(
                    'undecodable', f'{len(self.raw)} bytes are not a message of type '
                    f'{self.msg_type.__name__}: {err}') from err
        return self._message
