"""Which frames start a new period of a task: one per period, on a grid, with tolerance.

A frame up to ``tolerance`` of a period early still counts as the next period (camera and
timer jitter: a 10 Hz camera into a 100 ms task must not lose frames); anything earlier is
skipped. Periods are counted on a grid from the first release, not from the last frame
taken: judged by the gap alone, a 100 Hz camera into a 100 ms task released every 80 ms
(12.5 Hz), 25 % more work than the task declares and the analysis assumes.
"""

from __future__ import annotations

from dataclasses import dataclass

# The share of a period a frame may come early and still open the next one.
PERIOD_TOLERANCE = 0.25


@dataclass
class ReleaseSlots:
    """Per task: :meth:`admit` says whether a frame (arrival time, header stamp) opens a new
    period, and takes it (:meth:`opens` only asks: a frame is decoded only when it will
    run). Judged by stamps where both frames have one and they go forward (transport jitter
    cannot make a frame look early), by arrival otherwise (a source without stamps, or one
    that restarted)."""

    period_ns: int
    tolerance: float = PERIOD_TOLERANCE
    _last: tuple[int, int | None] | None = None  # (arrival, stamp) of the last release
    _slot_ns: int = 0  # where the last released period starts on the grid
    _by_stamp: bool = False  # which clock the grid is on

    def opens(self, arrival_ns: int, stamp_ns: int | None) -> bool:
        """Whether the frame would open a new period; nothing changes."""
        return self._judge(arrival_ns, stamp_ns) is not None

    def admit(self, arrival_ns: int, stamp_ns: int | None) -> bool:
        """:meth:`opens`, and where it does, the frame takes its period."""
        judged = self._judge(arrival_ns, stamp_ns)
        if judged is None:
            return False
        self._slot_ns, self._by_stamp = judged
        self._last = (arrival_ns, stamp_ns)
        return True

    def _judge(self, arrival_ns: int, stamp_ns: int | None) -> tuple[int, bool] | None:
        """The grid slot the frame opens and whether the grid is on stamps; None when the
        frame falls inside the current period."""
        if self._last is None:
            by_stamp = stamp_ns is not None
            return (stamp_ns if stamp_ns is not None else arrival_ns), by_stamp
        last_arrival, last_stamp = self._last
        now, last, by_stamp = arrival_ns, last_arrival, False
        if stamp_ns is not None and last_stamp is not None and stamp_ns >= last_stamp:
            now, last, by_stamp = stamp_ns, last_stamp, True
        # On the other clock from here on: its grid starts anew at the last release.
        slot = self._slot_ns if by_stamp == self._by_stamp else last
        early_ns = self.period_ns * self.tolerance
        if now - last < self.period_ns - early_ns or now < slot + self.period_ns - early_ns:
            return None
        # The latest grid period this frame may open (after a gap in the stream: several on).
        return slot + self.period_ns * int((now - slot + early_ns) // self.period_ns), by_stamp
