"""Live tails: one bounded queue per SubscribeLogs caller, fed after each commit.

A slow subscriber never slows ingestion or other subscribers: when its queue is full it loses its
oldest entries, and the next entry it receives carries ``dropped`` = how many it lost.
"""

from __future__ import annotations

import asyncio
from collections import deque

from runtime.services.logger.filter import Selector
from runtime.v1 import logger_pb2

SUBSCRIBER_QUEUE = 1000


class Subscriber:
    """One live tail: its selector, its bounded queue and its loss count."""

    def __init__(self, sel: Selector, maxsize: int = SUBSCRIBER_QUEUE) -> None:
        self.sel = sel
        self._queue: deque[logger_pb2.LogEntry] = deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self.dropped = 0
        self.total_dropped = 0

    def offer(self, entries: list[logger_pb2.LogEntry]) -> None:
        """Queue the matching entries; drops the oldest when full (never waits)."""
        q = self._queue
        for e in entries:
            if self.sel.matches(e):
                if len(q) == q.maxlen:
                    self.dropped += 1
                    self.total_dropped += 1
                q.append(e)
        if q:
            self._ready.set()

    async def next(self) -> logger_pb2.LogEntry:
        """The next entry, with ``dropped`` set when entries were lost just before it."""
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        entry = self._queue.popleft()
        if self.dropped:
            # Entries are shared with the ring: tell this subscriber on a copy.
            marked = logger_pb2.LogEntry()
            marked.CopyFrom(entry)
            marked.dropped = self.dropped
            self.dropped = 0
            return marked
        return entry


class Subscribers:
    """Every live tail of one logger."""

    def __init__(self) -> None:
        self._subs: set[Subscriber] = set()

    def __len__(self) -> int:
        return len(self._subs)

    def add(self, sel: Selector, maxsize: int = SUBSCRIBER_QUEUE) -> Subscriber:
        """Register a new tail."""
        sub = Subscriber(sel, maxsize)
        self._subs.add(sub)
        return sub

    def remove(self, sub: Subscriber) -> None:
        """Forget a tail (its stream ended)."""
        self._subs.discard(sub)

    def publish(self, entries: list[logger_pb2.LogEntry]) -> None:
        """Offer freshly committed entries to every tail (call on the event loop)."""
        for sub in self._subs:
            sub.offer(entries)
