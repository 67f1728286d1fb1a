"""Decode each camera message once for every task node that subscribes to its topic.

Under the DeadlineExecutor the container takes each message once for all its nodes; under
stock executors DDS hands every node's subscription its own copy, so N tasks on one camera
would decode and prepare the same frame N times in the spinning thread. The same message,
or a copy whose header, layout and bytes equal the previous message on the topic, gets the
same :class:`Frame`; a bad message is never cached, so every node counts it.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from edge_perception.ros.image_conversion import decode_image
from edge_perception.tasks.frames import Frame


class SharedFrames:
    """The last decoded frame per topic (one container's nodes share one instance)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[tuple[Any, ...], Any, Frame]] = {}
        self._lock = threading.Lock()
        self.decoded = 0
        self.shared = 0

    def frame(self, topic: str, msg: Any) -> Frame:
        """The frame of ``msg`` (an Image received on ``topic``).

        :raises ImageDecodeError: as :func:`decode_image`.
        """
        stamp = msg.header.stamp
        key = (stamp.sec, stamp.nanosec, msg.header.frame_id, msg.encoding, msg.height,
               msg.width, msg.step, msg.is_bigendian)
        with self._lock:
            last = self._last.get(topic)
            if last is not None and last[0] == key and (
                    last[1] is msg.data or _same_bytes(last[1], msg.data)):
                self.shared += 1
                return last[2]
        frame = Frame(decode_image(msg))
        with self._lock:
            self._last[topic] = (key, msg.data, frame)
            self.decoded += 1
        return frame


def _same_bytes(a: Any, b: Any) -> bool:
    # numpy compares 230 kB in ~17 us; array.array's own == takes ~110 us.
    return bool(np.array_equal(np.frombuffer(a, np.uint8), np.frombuffer(b, np.uint8)))
