"""Isolating a task that keeps failing: refuse its jobs for a growing back-off.

A task whose jobs raise ``limit`` times in a row, or overrun their budget ``overrun_limit``
times in a row, is isolated: its releases are refused for ``base_backoff`` (doubling at
every repeat, up to ``max_backoff``), so a broken model or callback cannot keep taking lane
time from the others. After the back-off one job is admitted on probation; a good job closes
the case. Overruns need a long run: a few in a row happen to healthy tasks whenever the
machine is contended (found in the soak: 3 isolated the urgent task under 2x load).
"""

from __future__ import annotations

from dataclasses import dataclass

NS_PER_S = 1_000_000_000


@dataclass
class FaultGuard:
    limit: int = 3
    overrun_limit: int = 20
    base_backoff_ns: int = NS_PER_S
    max_backoff_ns: int = 30 * NS_PER_S
    consecutive: int = 0  # failed jobs in a row
    consecutive_overruns: int = 0
    isolations: int = 0
    isolated_until_ns: int = 0
    last_reason: str = ''
    _backoff_ns: int = 0

    def admits(self, now_ns: int) -> bool:
        return now_ns >= self.isolated_until_ns

    def isolated(self, now_ns: int) -> bool:
        return not self.admits(now_ns)

    def record(self, *, failed: bool, overran: bool, now_ns: int) -> str | None:
        """Account one finished job; returns a message when this isolates the task."""
        self.consecutive = self.consecutive + 1 if failed else 0
        self.consecutive_overruns = self.consecutive_overruns + 1 if overran else 0
        if not failed and not overran:
            self._backoff_ns = 0  # recovered: the next isolation starts short again
            return None
        if self.consecutive >= self.limit:
            self.last_reason, count = 'failures', self.limit
            self.consecutive = self.limit - 1  # probation: one more failure isolates again
        elif self.consecutive_overruns >= self.overrun_limit:
            self.last_reason, count = 'overruns', self.overrun_limit
            self.consecutive_overruns = self.overrun_limit - 1
        else:
            return None
        self._backoff_ns = min(self.max_backoff_ns,
                               self._backoff_ns * 2 if self._backoff_ns else self.base_backoff_ns)
        self.isolated_until_ns = now_ns + self._backoff_ns
        self.isolations += 1
        return (f'isolated after {count} consecutive {self.last_reason}; '
                f'jobs refused for {self._backoff_ns / NS_PER_S:g} s')
