"""Which frame stamps a task accepts: not from the future, not older than the last frame.

A frame stamped more than ``future_tolerance`` ahead of the receiver's clock comes from a
broken or unsynchronised camera; one older than the previous frame (by up to
``restart_after``) arrived out of order and is stale. A jump further back is taken as the
source restarting (a bag played in a loop, a camera reboot): accepted, and the gate resets.
"""

from __future__ import annotations

from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass
class StampGate:
    future_tolerance_ns: int = NS_PER_S
    restart_after_ns: int = NS_PER_S
    last_ns: int | None = None
    restarts: int = 0

    def check(self, stamp_ns: int, now_ns: int) -> str | None:
        """None when the frame may be processed, else the reason to drop it."""
        if stamp_ns > now_ns + self.future_tolerance_ns:
            return 'future_stamp'
        if self.last_ns is not None and stamp_ns < self.last_ns:
            if self.last_ns - stamp_ns <= self.restart_after_ns:
                return 'out_of_order_stamp'
            self.restarts += 1
        self.last_ns = stamp_ns
        return None
