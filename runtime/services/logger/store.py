"""The logger's store: numbers entries, truncates huge messages, persists, keeps the ring.

``append`` (= ``number`` + ``persist``) commits to SQLite before it returns, so whatever the
logger acknowledges survives a SIGKILL. Queries go to the ring when it can answer them (``LogRing.select``), else to SQLite/FTS5.

Example:
    >>> store = LogStore(None)          # ring only (no lab dir)
    >>> stored, truncated = store.append([logger_pb2.LogEntry(service_name="x", message="hi")])
    >>> [e.sequence for e in stored]
    [1]
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import IO

from runtime.client.jsonlog import entry_to_line
from runtime.identity import LOGS_DB_FILE
from runtime.services.logger.db import LogDB
from runtime.services.logger.filter import Selector
from runtime.services.logger.ring import RING_SIZE, LogRing
from runtime.v1 import logger_pb2

MAX_MESSAGE_BYTES = 64 * 1024
TRUNCATION_MARKER = "…[truncated {n} bytes]"


def truncate_message(message: str, limit: int = MAX_MESSAGE_BYTES) -> tuple[str, bool]:
    """Cut a message to ``limit`` UTF-8 bytes, marker included; returns (text, was_cut)."""
    raw = message.encode("utf-8", "replace")
    if len(raw) <= limit:
        return message, False
    room = limit - len(TRUNCATION_MARKER.format(n=len(raw)).encode("utf-8"))
    kept = raw[:room].decode("utf-8", "ignore")
    cut = len(raw) - len(kept.encode("utf-8"))
    return kept + TRUNCATION_MARKER.format(n=cut), True


class LogStore:
    """Ring buffer plus (when a lab dir is given) the SQLite file ``<lab dir>/logs.sqlite``."""

    def __init__(
        self, lab_dir: str | None, *, ring_size: int = RING_SIZE, retention: int | None = None
    ) -> None:
        self.ring = LogRing(ring_size)
        self.db = LogDB(os.path.join(lab_dir, LOGS_DB_FILE), retention) if lab_dir else None
        self._lock = threading.Lock()
        self.last_seq = 0
        if self.db is not None:
            self.last_seq = self.db.last_seq
            warm = self.db.newest(ring_size)
            if warm:
                self.ring.mark_older_exists(self.db.max_ts_us_before(warm[0].sequence))
                self.ring.extend(warm)

    def append(self, entries: list[logger_pb2.LogEntry]) -> tuple[list[logger_pb2.LogEntry], int]:
        """Number, keep and commit entries; returns (stored entries, how many were cut)."""
        truncated = self.number(entries)
        self.persist(entries)
        return entries, truncated

    def number(self, entries: list[logger_pb2.LogEntry]) -> int:
        """Stamp, truncate, number and add entries to the ring (no disk); returns how many were cut.

        Entries sent without a timestamp get the time of receipt (one clock reading per batch).

        The logger calls this on arrival so live tails see entries at once, then ``persist``
        on its writer thread, and acknowledges only after that commit.
        """
        truncated = 0
        now_us = 0
        for e in entries:
            if not e.timestamp_us and not e.timestamp:
                # Stamped on receipt: an entry at epoch 0 would vanish from every time-bounded
                # query and sort before everything else in the tail.
                now_us = now_us or time.time_ns() // 1000
                e.timestamp_us = now_us
                e.timestamp = now_us // 1000
            elif not e.timestamp:
                e.timestamp = e.timestamp_us // 1000
            if len(e.message) * 4 > MAX_MESSAGE_BYTES:  # cheap: a shorter text cannot exceed the limit
                text, cut = truncate_message(e.message)
                if cut:
                    e.message = text
                    truncated += 1
        with self._lock:
            for e in entries:
                self.last_seq += 1
                e.sequence = self.last_seq
            self.ring.extend(entries)
        return truncated

    def persist(self, entries: list[logger_pb2.LogEntry]) -> None:
        """Commit numbered entries to SQLite (from one thread; concurrent streams may commit out of order)."""
        if self.db is not None:
            self.db.insert(entries)

    def query(self, sel: Selector) -> tuple[list[logger_pb2.LogEntry], str]:
        """Entries for a selector and where they came from (``"ring"`` or ``"sqlite"``)."""
        found = self.ring.select(sel)
        if found is not None or self.db is None:
            return (found or []), "ring"
        return self.db.select(sel), "sqlite"

    def export_ndjson(self, out: IO[str]) -> int:
        """Write every stored entry as one JSON line (the jsonlog contract); returns the count."""
        n = 0
        for e in self._all():
            out.write(entry_to_line(e) + "\n")
            n += 1
        return n

    def _all(self) -> Iterator[logger_pb2.LogEntry]:
        if self.db is not None:
            yield from self.db.iter_all()
        else:
            yield from self.ring.newest(self.ring.capacity)

    def close(self) -> None:
        """Close the SQLite file."""
        if self.db is not None:
            self.db.close()
