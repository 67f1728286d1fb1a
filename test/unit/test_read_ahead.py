"""ReadAhead: a bag read on a thread of its own, bounded, in order, errors in place."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from edge_perception.tools.read_ahead import ReadAhead


def test_items_come_in_order_and_the_source_is_closed_at_its_end() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            yield from range(50)
        finally:
            closed.set()

    assert list(ReadAhead(source(), size_of=lambda _: 1, max_bytes=7)) == list(range(50))
    assert closed.wait(2)


def test_reading_stays_within_the_budget_ahead_of_the_consumer() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for item in range(100):
            produced.append(item)
            yield item

    ahead = ReadAhead(source(), size_of=lambda _: 10, max_bytes=40)
    ahead.wait_filled()
    # 4 items fill the budget; the source may have been asked for one more, which waits.
    assert len(produced) in (4, 5)
    consumed = iter(ahead)
    assert [next(consumed) for _ in range(3)] == [0, 1, 2]
    ahead.wait_filled()
    assert len(produced) in (7, 8)  # 3 taken, 4 held, maybe one waiting for room
    ahead.close()


def test_filled_means_the_next_item_does_not_fit_whatever_the_sizes() -> None:
    # A small item after big ones: the budget is not reached by it, yet the big one after it
    # does not fit (a bag's ground truth between camera frames).
    sizes = [40, 1, 40, 1, 40, 1, 40]
    ahead = ReadAhead(iter(sizes), size_of=lambda n: n, max_bytes=85)
    ahead.wait_filled()  # returns (it hung here when judged by the last item's size)
    assert list(ahead) == sizes


def test_an_oversized_item_is_still_read_alone() -> None:
    assert list(ReadAhead(iter([5, 500, 6]), size_of=lambda n: n, max_bytes=100)) == [5, 500, 6]


def test_an_error_of_the_source_reaches_the_consumer_after_the_items_before_it() -> None:
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError('disk gone')

    items = iter(ReadAhead(source(), size_of=lambda _: 1))
    assert [next(items), next(items)] == [1, 2]
    with pytest.raises(OSError, match='disk gone'):
        next(items)


def test_close_stops_reading_and_wait_filled_returns() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for item in range(1000):
            produced.append(item)
            yield item

    ahead = ReadAhead(source(), size_of=lambda _: 1, max_bytes=3)
    ahead.wait_filled()
    ahead.close()
    ahead.wait_filled()
    assert len(produced) <= 4
