"""Bounded fan-out of changes to streaming watchers (config and state services).

Each watcher has its own queue of at most ``maxsize`` items; a slow watcher loses its oldest
items (counted in ``dropped``) instead of holding memory or slowing the writer down.

    watchers = Watchers()
    w = watchers.add(lambda item: item.key == "counter")
    watchers.publish(value)          # from the service's event loop
    item = await w.next()
    watchers.remove(w)
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
QUEUE_SIZE = 256


class Watcher(Generic[T]):
    """One streaming caller: a bounded queue of the items it wants."""

    def __init__(self, wants: Callable[[T], bool], maxsize: int = QUEUE_SIZE) -> None:
        self.wants = wants
        self.dropped = 0
        self._items: collections.deque[T] = collections.deque(maxlen=maxsize)
        self._ready = asyncio.Event()

    def put(self, item: T) -> None:
        """Queue ``item``; when full, the oldest item goes (and is counted)."""
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(item)
        self._ready.set()

    async def next(self) -> T:
        """The oldest queued item; waits for one."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


class Watchers(Generic[T]):
    """Every live watcher of one service."""

    def __init__(self, maxsize: int = QUEUE_SIZE) -> None:
        self.maxsize = maxsize
        self._all: set[Watcher[T]] = set()

    def add(self, wants: Callable[[T], bool]) -> Watcher[T]:
        """A new watcher receiving the published items for which ``wants(item)`` is true."""
        w: Watcher[T] = Watcher(wants, self.maxsize)
        self._all.add(w)
        return w

    def remove(self, w: Watcher[T]) -> None:
        """Forget a watcher (its stream ended)."""
        self._all.discard(w)

    def publish(self, item: T) -> None:
        """Hand ``item`` to every watcher that wants it."""
        for w in self._all:
            if w.wants(item):
                w.put(item)

    def __len__(self) -> int:
        return len(self._all)
