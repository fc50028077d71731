"""SQLite persistence of log entries: WAL, batched inserts, FTS5 search, bounded retention.

One writer connection (used under a lock by whoever appends) and one reader connection per
thread; WAL lets queries run while batches commit. ``seq`` is the entry's sequence and the rowid
of both the table and its external-content FTS5 index.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping

from runtime.services.logger.filter import Selector, sort_key
from runtime.v1 import logger_pb2

# Retention: keep at most this many entries on disk (oldest go first); LoggerSettings.retention.
RETENTION_ENTRIES = 200_000  # ~45 MB of SQLite with its FTS index
# Prune only once this many entries above the bound have piled up, so deletes come in chunks.
RETENTION_SLACK = 10_000
# WAL checkpoints (the only fsyncs with synchronous=NORMAL) run on their own thread at this
# cadence, so a commit, and the ack that waits for it, never waits for the disk to sync.
CHECKPOINT_INTERVAL_S = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    seq INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    ts_us INTEGER NOT NULL,
    service TEXT NOT NULL,
    instance TEXT NOT NULL,
    level INTEGER NOT NULL,
    message TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    source TEXT NOT NULL,
    metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_ts ON logs(ts_us);
CREATE INDEX IF NOT EXISTS logs_cid ON logs(correlation_id) WHERE correlation_id != '';
CREATE VIRTUAL TABLE IF NOT EXISTS logs_fts USING fts5(message, content='logs', content_rowid='seq');
"""
_COLUMNS = "seq, ts, ts_us, service, instance, level, message, correlation_id, source, metadata"


# One encoder, made once: json.dumps with a keyword builds a new JSONEncoder on every call.
_encode = json.JSONEncoder(ensure_ascii=False).encode
_META_CACHE_MAX = 1024
_meta_cache: dict[tuple[tuple[str, str], ...], str] = {}


def metadata_json(metadata: Mapping[str, str]) -> str:
    """An entry's metadata as the JSON the table stores.

    Most entries repeat a few metadata maps ({"logger": "calculator.server"}, a child's pid and
    stream): their text is kept in a bounded cache (cleared when full), on the writer thread only.
    """
    if not metadata:
        return "{}"
    key = tuple(metadata.items())
    text = _meta_cache.get(key)
    if text is None:
        if len(_meta_cache) >= _META_CACHE_MAX:
            _meta_cache.clear()
        text = _meta_cache[key] = _encode(dict(key))
    return text


def row_of(e: logger_pb2.LogEntry) -> tuple[object, ...]:
    """The table row of a numbered entry."""
    meta = metadata_json(e.metadata)
    ts_us = e.timestamp_us or e.timestamp * 1000
    return (
        e.sequence, e.timestamp, ts_us, e.service_name, e.instance_id, e.level,
        e.message, e.correlation_id, e.source, meta,
    )  # fmt: skip


def entry_of(row: tuple) -> logger_pb2.LogEntry:
    """The LogEntry of a table row."""
    seq, ts, ts_us, service, instance, level, message, cid, source, meta = row
    return logger_pb2.LogEntry(
        sequence=seq, timestamp=ts, timestamp_us=ts_us, service_name=service, instance_id=instance,
        level=level, message=message, correlation_id=cid, source=source,
        metadata=json.loads(meta) if meta != "{}" else None,
    )  # fmt: skip


def connect(path: str) -> sqlite3.Connection:
    """A connection with the lab's pragmas (WAL; NORMAL sync survives a killed process)."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class LogDB:
    """The SQLite file of one lab's logs."""

    def __init__(self, path: str, retention: int | None = None) -> None:
        self.path = path
        self.retention = retention or RETENTION_ENTRIES
        self._w = connect(path)
        self._w.executescript(_SCHEMA)
        self._w.execute("PRAGMA wal_autocheckpoint=0")
        self._wlock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        lo, hi = self._w.execute("SELECT min(seq), max(seq) FROM logs").fetchone()
        self.min_seq = lo or 0
        self.last_seq = hi or 0
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="log-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        conn = connect(self.path)
        try:
            while not self._closing.wait(CHECKPOINT_INTERVAL_S):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def insert(self, entries: list[logger_pb2.LogEntry]) -> None:
        """Insert numbered entries in one transaction; returns after the commit."""
        rows = [row_of(e) for e in entries]
        with self._wlock:
            c = self._w
            c.execute("BEGIN")
            try:
                c.executemany(f"INSERT INTO logs ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
                c.executemany(
                    "INSERT INTO logs_fts (rowid, message) VALUES (?, ?)", [(r[0], r[6]) for r in rows]
                )
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise
            if entries:
                # Two streams commit their numbered entries in the order their calls end, not
                # always in numbering order: keep the true bounds.
                self.last_seq = max(self.last_seq, entries[-1].sequence)
                self.min_seq = min(self.min_seq, entries[0].sequence) if self.min_seq else entries[0].sequence
            if self.last_seq - self.min_seq + 1 > self.retention + RETENTION_SLACK:
                self._prune()

    def _prune(self) -> None:
        cut = self.last_seq - self.retention  # delete seq <= cut
        c = self._w
        c.execute("BEGIN")
        c.execute(
            "INSERT INTO logs_fts (logs_fts, rowid, message) SELECT 'delete', seq, message FROM logs WHERE seq <= ?",
            (cut,),
        )
        c.execute("DELETE FROM logs WHERE seq <= ?", (cut,))
        c.execute("COMMIT")
        self.min_seq = cut + 1

    def count(self) -> int:
        """How many entries are stored."""
        return self._reader().execute("SELECT count(*) FROM logs").fetchone()[0]

    def newest(self, n: int) -> list[logger_pb2.LogEntry]:
        """The last ``n`` entries by sequence, oldest first (to warm the ring after a restart)."""
        rows = (
            self._reader().execute(f"SELECT {_COLUMNS} FROM logs ORDER BY seq DESC LIMIT ?", (n,)).fetchall()
        )
        return [entry_of(r) for r in reversed(rows)]

    def max_ts_us_before(self, seq: int) -> int:
        """The newest timestamp (µs) among entries numbered below ``seq``; -1 if there are none."""
        row = self._reader().execute("SELECT max(ts_us) FROM logs WHERE seq < ?", (seq,)).fetchone()
        return row[0] if row and row[0] is not None else -1

    def select(self, sel: Selector) -> list[logger_pb2.LogEntry]:
        """Entries matching the selector, in time order, at most ``sel.limit``."""
        where: list[str] = []
        args: list[object] = []
        table = "logs"
        if sel.words:
            # CROSS JOIN: drive from the FTS index so it can walk rowids in order (see below).
            table = "logs_fts CROSS JOIN logs ON logs.seq = logs_fts.rowid"
            where.append("logs_fts MATCH ?")
            args.append(sel.fts_query())
        if sel.services:
            where.append(f"service IN ({','.join('?' * len(sel.services))})")
            args.extend(sorted(sel.services))
        if sel.instances:
            where.append(f"instance IN ({','.join('?' * len(sel.instances))})")
            args.extend(sorted(sel.instances))
        if sel.min_level:
            where.append("level >= ?")
            args.append(sel.min_level)
        if sel.start_ms:
            where.append("ts >= ?")
            args.append(sel.start_ms)
        if sel.end_ms:
            where.append("ts <= ?")
            args.append(sel.end_ms)
        if sel.correlation_id:
            where.append("correlation_id = ? AND correlation_id != ''")
            args.append(sel.correlation_id)
        order = "DESC" if sel.newest_first else "ASC"
        cols = ", ".join(f"logs.{c.strip()}" for c in _COLUMNS.split(","))
        sql = f"SELECT {cols} FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        # With a text search, page by arrival (FTS5 walks rowids in order and stops at the limit;
        # sorting every hit by time would read them all), then order the page by time.
        if sel.words:
            sql += f" ORDER BY logs_fts.rowid {order} LIMIT ?"  # one key, or SQLite sorts every hit
        else:
            sql += f" ORDER BY logs.ts_us {order}, logs.seq {order} LIMIT ?"
        args.append(sel.limit)
        found = [entry_of(r) for r in self._reader().execute(sql, args)]
        if sel.words:
            found.sort(key=sort_key, reverse=sel.newest_first)
        return found

    def iter_all(self, batch: int = 5000) -> Iterator[logger_pb2.LogEntry]:
        """Every stored entry in sequence order (for NDJSON export)."""
        last = 0
        while True:
            rows = (
                self._reader()
                .execute(f"SELECT {_COLUMNS} FROM logs WHERE seq > ? ORDER BY seq LIMIT ?", (last, batch))
                .fetchall()
            )
            if not rows:
                return
            for r in rows:
                yield entry_of(r)
            last = rows[-1][0]

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            self._readers.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection."""
        self._closing.set()
        self._checkpointer.join()
        with self._wlock:
            for conn in self._readers:
                conn.close()
            self._w.close()
