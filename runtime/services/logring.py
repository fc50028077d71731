"""The in-memory ring of the newest log entries: live views and most queries read only this.

The ring knows which time range it can answer on its own: every entry it ever evicted (or never
loaded from SQLite) is older than ``evicted_max_us``, so a query whose range starts after that
sees everything in the ring that exists at all.
"""

from __future__ import annotations

import threading
from collections import deque

from runtime.services.logfilter import Selector, sort_key
from runtime.v1 import logger_pb2

RING_SIZE = 10_000
_Item = tuple[int, str, str, str, int, str, logger_pb2.LogEntry]


class LogRing:
    """A bounded, thread-safe ring of LogEntry with the lower-case message kept for search."""

    def __init__(self, capacity: int = RING_SIZE) -> None:
        if capacity < 1:
            raise ValueError(f"ring capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        # (level, service, instance, correlation id, ts ms, lower-case message, entry): filters read
        # plain Python fields, which is several times faster than protobuf attribute access.
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
                (e.level, e.service_name, e.instance_id, e.correlation_id, e.timestamp, e.message.lower(), e)
                for e in entries
            )

    def mark_older_exists(self, ts_us: int) -> None:
        """Record that an entry at ``ts_us`` exists outside the ring (evicted, or only in SQLite)."""
        self.evicted_max_us = max(self.evicted_max_us, ts_us)

    def select(self, sel: Selector) -> list[logger_pb2.LogEntry] | None:
        """Matching entries in time order (honouring limit and order), or None if SQLite must answer."""
        with self._lock:
            items = list(self._items)
        for word in sel.words:  # narrow with C-speed substring tests before the full check
            items = [it for it in items if word in it[5]]
        found = [it[-1] for it in items if sel.matches_fields(*it[:6])]
        found.sort(key=sort_key, reverse=sel.newest_first)
        if self.evicted_max_us < 0 or sel.start_ms * 1000 > self.evicted_max_us:
            return found[: sel.limit]
        # Newest first with a full page whose oldest entry is newer than anything evicted:
        # nothing outside the ring can belong to that page (ties: evicted entries arrived earlier).
        if (
            sel.newest_first
            and len(found) >= sel.limit
            and sort_key(found[sel.limit - 1])[0] >= self.evicted_max_us
        ):
            return found[: sel.limit]
        return None

    def newest(self, n: int) -> list[logger_pb2.LogEntry]:
        """The last ``n`` entries by arrival."""
        with self._lock:
            return [it[-1] for it in list(self._items)[-n:]]
