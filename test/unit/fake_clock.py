"""A clock that moves only when told to (isolates scheduling logic from real time)."""

from __future__ import annotations

from collections.abc import Iterator


class FakeClock:
    def __init__(self, start_ns: int = 1_000_000_000) -> None:
        self.now = start_ns

    def now_ns(self) -> int:
        return self.now

    def advance_ms(self, ms: float) -> None:
        self.now += round(ms * 1e6)

    def work(self, stage_ms: list[float], log: list[str] | None = None,
             name: str = '') -> Iterator[None]:
        """Job stages that take ``stage_ms`` each (an empty preparation step first)."""
        for index, ms in enumerate(stage_ms):
            yield
            if log is not None:
                log.append(f'{name}{index}')
            self.advance_ms(ms)
