"""The in-memory ring of the newest log entries: live views and most queries read only this.

The ring knows which time range it can answer on its own: every entry it ever evicted (or never
loaded from SQLite) is older than ``evicted_max_us``, so a query whose range starts after that
sees everything in the ring that exists at all.
"""

from __future__ import annotations

import heapq
import threading
from collections import deque

from runtime.services.logger.filter import Selector, sort_key
from runtime.v1 import logger_pb2

RING_SIZE = 10_000
# (level, service, instance, correlation id, ts ms, lower-case message, ts µs, sequence, entry)
_Item = tuple[int, str, str, str, int, str, int, int, logger_pb2.LogEntry]


def _time_order(it: _Item) -> tuple[int, int]:
    return (it[6], it[7])


def _narrow(items: list[_Item], sel: Selector) -> list[_Item]:
    # One comprehension per filter that is set: much faster than a predicate call per entry.
    if sel.min_level:
        items = [it for it in items if it[0] >= sel.min_level]
    if sel.services:
        items = [it for it in items if it[1] in sel.services]
    if sel.instances:
        items = [it for it in items if it[2] in sel.instances]
    if sel.correlation_id:
        items = [it for it in items if it[3] == sel.correlation_id]
    if sel.start_ms:
        items = [it for it in items if it[4] >= sel.start_ms]
    if sel.end_ms:
        items = [it for it in items if it[4] <= sel.end_ms]
    for word in sel.words:  # C-speed substring test first, then the word-start check
        items = [it for it in items if word in it[5]]
    if sel.words:
        items = [it for it in items if sel.matches_fields(*it[:6])]
    return items


class LogRing:
    """A bounded, thread-safe ring of LogEntry with the lower-case message kept for search."""

    def __init__(self, capacity: int = RING_SIZE) -> None:
        if capacity < 1:
            raise ValueError(f"ring capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        # Filters and sorting read plain Python fields (see _Item): several times faster than
        # protobuf attribute access.
        self._items: deque[_Item] = deque(maxlen=capacity)
        self._lock = threading.Lock()
        self.evicted_max_us = -1  # -1: nothing older exists outside the ring

    def __len__(self) -> int:
        return len(self._items)

    def extend(self, entries: list[logger_pb2.LogEntry]) -> None:
        """Add entries (already numbered), evicting the oldest beyond capacity."""
        with self._lock:
            overflow = len(self._items) + len(entries) - self.capacity
            for i in range(max(0, overflow)):
                old = self._items[i][-1] if i < len(self._items) else entries[i - len(self._items)]
                self.mark_older_exists(sort_key(old)[0])
            self._items.extend(
                (
                    e.level,
                    e.service_name,
                    e.instance_id,
                    e.correlation_id,
                    e.timestamp,
                    e.message.lower(),
                    e.timestamp_us or e.timestamp * 1000,
                    e.sequence,
                    e,
                )  # fmt: skip
                for e in entries
            )

    def mark_older_exists(self, ts_us: int) -> None:
        """Record that an entry at ``ts_us`` exists outside the ring (evicted, or only in SQLite)."""
        self.evicted_max_us = max(self.evicted_max_us, ts_us)

    def select(self, sel: Selector) -> list[logger_pb2.LogEntry] | None:
        """Matching entries in time order (honouring limit and order), or None if SQLite must answer."""
        with self._lock:
            items = list(self._items)
        matched = _narrow(items, sel)
        if sel.limit * 4 < len(matched):  # a small page: a heap keeps only `limit` items
            pick = heapq.nlargest if sel.newest_first else heapq.nsmallest
            ordered = pick(sel.limit, matched, key=_time_order)
        else:
            ordered = sorted(matched, key=_time_order, reverse=sel.newest_first)[: sel.limit]
        page = [it[-1] for it in ordered]
        if self.evicted_max_us < 0 or sel.start_ms * 1000 > self.evicted_max_us:
            return page
        # Newest first with a full page whose oldest entry is not older than anything evicted:
        # nothing outside the ring can belong to that page (ties: evicted entries arrived earlier).
        if sel.newest_first and len(page) >= sel.limit and sort_key(page[-1])[0] >= self.evicted_max_us:
            return page
        return None

    def newest(self, n: int) -> list[logger_pb2.LogEntry]:
        """The last ``n`` entries by arrival."""
        with self._lock:
            return [it[-1] for it in list(self._items)[-n:]]
