"""What a log query or a live tail asks for: one validated selector used by ring, SQLite and tails.

A bad filter raises ``ValueError`` with a message a learner can act on; the logger service turns
it into INVALID_ARGUMENT. Search text is split into words; an entry matches when every word starts
a word of its message (case-insensitive), the same rule the SQLite FTS5 index applies.

Example:
    >>> sel = Selector.build(services=["calculator"], min_level=4, search="divide zero")
    >>> sel.fts_query()
    '"divide"* "zero"*'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from runtime.client.jsonlog import LEVEL_NAMES
from runtime.errors import quote
from runtime.v1 import logger_pb2

DEFAULT_QUERY_LIMIT = 1000
MAX_QUERY_LIMIT = 100_000
# Words as the FTS5 unicode61 tokenizer sees them: letters and digits; "_" and punctuation split.
_WORD = re.compile(r"[^\W_]+")


def search_words(text: str) -> list[str]:
    """The lower-case words of a search text (``"Add(2,3)"`` -> ``["add", "2", "3"]``)."""
    return _WORD.findall(text.lower())


def sort_key(entry: logger_pb2.LogEntry) -> tuple[int, int]:
    """Time order of entries: microseconds when the sender had them, then arrival order."""
    return (entry.timestamp_us or entry.timestamp * 1000, entry.sequence)


@dataclass(frozen=True)
class Selector:
    """A validated filter over log entries (services, instances, level, time, words, correlation)."""

    services: frozenset[str] = frozenset()
    instances: frozenset[str] = frozenset()
    min_level: int = 0
    start_ms: int = 0
    end_ms: int = 0
    words: tuple[str, ...] = ()
    correlation_id: str = ""
    limit: int = DEFAULT_QUERY_LIMIT
    newest_first: bool = False
    _patterns: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def build(
        cls,
        *,
        services: list[str] | tuple[str, ...] = (),
        instances: list[str] | tuple[str, ...] = (),
        min_level: int = 0,
        start_ms: int = 0,
        end_ms: int = 0,
        search: str = "",
        correlation_id: str = "",
        limit: int = 0,
        newest_first: bool = False,
    ) -> Selector:
        """Check every field and build the selector; raises ValueError naming the bad field."""
        if min_level not in range(len(LEVEL_NAMES)):
            raise ValueError(
                f"unknown log level {min_level}; use one of "
                + ", ".join(f"{n} ({i})" for i, n in enumerate(LEVEL_NAMES))
            )
        for name, values in (("service name", services), ("instance id", instances)):
            if any(not v.strip() for v in values):
                raise ValueError(f"empty {name} in the filter; leave the list empty to match every {name}")
        if start_ms < 0 or end_ms < 0:
            raise ValueError("start and end times are Unix epoch milliseconds and cannot be negative")
        if start_ms and end_ms and end_ms < start_ms:
            raise ValueError(f"end time {end_ms} is before start time {start_ms}; swap them")
        if limit < 0 or limit > MAX_QUERY_LIMIT:
            raise ValueError(
                f"limit {limit} is out of range; use 1..{MAX_QUERY_LIMIT} (0 means {DEFAULT_QUERY_LIMIT})"
            )
        words = tuple(search_words(search))
        if search.strip() and not words:
            raise ValueError(f"search text {quote(search)} has no letters or digits to search for")
        patterns = tuple(re.compile(r"(?<![^\W_])" + re.escape(w)) for w in words)
        return cls(
            services=frozenset(services),
            instances=frozenset(instances),
            min_level=min_level,
            start_ms=start_ms,
            end_ms=end_ms,
            words=words,
            correlation_id=correlation_id,
            limit=limit or DEFAULT_QUERY_LIMIT,
            newest_first=newest_first,
            _patterns=patterns,
        )

    @classmethod
    def from_query(cls, q: logger_pb2.LogQuery) -> Selector:
        """The selector of a QueryLogs request."""
        return cls.build(
            services=list(q.service_names),
            instances=list(q.instance_ids),
            min_level=q.min_level,
            start_ms=q.start_time,
            end_ms=q.end_time,
            search=q.search_text,
            correlation_id=q.correlation_id,
            limit=q.limit,
            newest_first=q.newest_first,
        )

    @classmethod
    def from_filter(cls, f: logger_pb2.LogFilter) -> Selector:
        """The selector of a SubscribeLogs request (no time range, no limit)."""
        return cls.build(
            services=list(f.service_names),
            instances=list(f.instance_ids),
            min_level=f.min_level,
            search=f.search_text,
            correlation_id=f.correlation_id,
        )

    def matches(self, entry: logger_pb2.LogEntry) -> bool:
        """Whether one entry passes every part of the filter."""
        return self.matches_fields(
            entry.level, entry.service_name, entry.instance_id, entry.correlation_id, entry.timestamp,
            entry.message.lower() if self.words else "",
        )  # fmt: skip

    def matches_fields(
        self, level: int, service: str, instance: str, cid: str, ts_ms: int, text: str
    ) -> bool:
        """``matches`` on fields already read out of an entry (``text``: the lower-case message)."""
        if level < self.min_level:
            return False
        if self.services and service not in self.services:
            return False
        if self.instances and instance not in self.instances:
            return False
        if self.correlation_id and cid != self.correlation_id:
            return False
        if self.start_ms and ts_ms < self.start_ms:
            return False
        if self.end_ms and ts_ms > self.end_ms:
            return False
        # Cheap substring test first; the pattern then checks that the word starts there.
        return all(w in text and p.search(text) for w, p in zip(self.words, self._patterns, strict=True))

    def fts_query(self) -> str:
        """The FTS5 MATCH expression for the search words ("" when there are none)."""
        return " ".join(f'"{w}"*' for w in self.words)
