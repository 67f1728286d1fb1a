"""Read a bag ahead of its player, on a thread of its own, as rosbag2's player keeps a
read-ahead queue: reading and deserialising never delay a message that is due now."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

Item = TypeVar('Item')
# Enough for seconds of a 320x240 camera and a few 1080p frames; a player falls behind only
# when reading is slower than playing for longer than this.
READ_AHEAD_BYTES = 64 << 20


class ReadAhead(Generic[Item]):
    """Iterates ``source`` from a background thread, holding at most ``max_bytes`` (by
    ``size_of``; always at least one item) ahead of the consumer. An error the source raises
    is raised to the consumer at that point of the stream."""

    def __init__(self, source: Iterable[Item], *, size_of: Callable[[Item], int],
                 max_bytes: int = READ_AHEAD_BYTES) -> None:
        self._source = source
        self._size_of = size_of
        self._max_bytes = max_bytes
        self._items: deque[tuple[Item, int]] = deque()
        self._bytes = 0
        self._finished = False
        self._closed = False
        self._full = False  # the reader waits for room: the budget holds no next item
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._fill, name='bag-read-ahead', daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        try:
            for item in self._source:
                size = self._size_of(item)
                with self._changed:
                    while (self._items and self._bytes + size > self._max_bytes
                           and not self._closed):
                        self._full = True
                        self._changed.notify_all()
                        self._changed.wait()
                    self._full = False
                    if self._closed:
                        return
                    self._items.append((item, size))
                    self._bytes += size
                    self._changed.notify_all()
        except BaseException as err:  # handed to the consumer, in stream order
            self._error = err
        finally:
            close = getattr(self._source, 'close', None)
            if close is not None:  # a generator's own cleanup (a bag reader closes its file)
                close()
            with self._changed:
                self._finished = True
                self._changed.notify_all()

    def wait_filled(self) -> None:
        """Until the next item does not fit or the source is read: the first read of a
        message type compiles its deserialiser, holding the GIL (60 ms measured), so a player
        starts its clock only after the first stretch of the bag is read."""
        with self._changed:
            while not (self._finished or self._closed or self._full):
                self._changed.wait()

    def __iter__(self) -> Iterator[Item]:
        while True:
            with self._changed:
                while not self._items and not self._finished:
                    self._changed.wait()
                if not self._items:
                    if self._error is not None:
                        raise self._error
                    return
                item, size = self._items.popleft()
                self._bytes -= size
                self._full = False  # room made: the reader looks again
                self._changed.notify_all()
            yield item

    def close(self) -> None:
        """Stop reading (the thread ends after the item it reads now)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
