"""Whether a task's camera is still sending: a task without frames meets no deadline, yet
misses none either, so without this /diagnostics said OK while a camera was silent."""

from __future__ import annotations

from dataclasses import dataclass

OK, WARN, ERROR = 'ok', 'warn', 'error'
# As diagnostic levels (core.health).
INPUT_LEVELS = {OK: 0, WARN: 1, ERROR: 2}
# Never WARN before this much silence: a 10 ms task's five periods are a camera's jitter.
MIN_WARN_NS = 1_000_000_000


@dataclass(frozen=True)
class InputVerdict:
    """``level`` (ok/warn/error), a one-line message, and the last frame's time (ns on the
    watchdog's clock; None: none yet)."""

    level: str
    message: str
    last_frame_ns: int | None


class InputWatchdog:
    """No frame for ``warn_periods`` task periods (at least 1 s) is a WARN, for
    ``error_periods`` (at least twice that) an ERROR, counted from the last frame, or from
    ``started_ns`` before the first.

    :param period_ns: the task's period.
    """

    def __init__(self, period_ns: int, *, warn_periods: float, error_periods: float,
                 started_ns: int) -> None:
        if not 0 < warn_periods <= error_periods:
            raise ValueError(f'need 0 < warn_periods ({warn_periods}) <= error_periods '
                             f'({error_periods})')
        self.period_ns = period_ns
        self.warn_ns = max(round(warn_periods * period_ns), MIN_WARN_NS)
        self.error_ns = max(round(error_periods * period_ns), 2 * self.warn_ns)
        self.started_ns = started_ns
        self.last_frame_ns: int | None = None

    def frame(self, now_ns: int) -> None:
        """A frame arrived (good or bad: the camera is alive either way)."""
        self.last_frame_ns = now_ns

    def verdict(self, now_ns: int) -> InputVerdict:
        since = self.started_ns if self.last_frame_ns is None else self.last_frame_ns
        silent_ns = now_ns - since
        what = ('no frame yet' if self.last_frame_ns is None
                else f'no frame for {silent_ns / 1e9:.1f} s')
        if silent_ns >= self.error_ns:
            level = ERROR
        elif silent_ns >= self.warn_ns:
            level = WARN
        else:
            return InputVerdict(OK, 'receiving frames', self.last_frame_ns)
        periods = silent_ns / self.period_ns
        return InputVerdict(level, f'{what} ({periods:.0f} periods): is the camera running?',
                            self.last_frame_ns)
