"""SQLite persistence of shared state: versioned keys and the last fencing token of each lock.

The file is ``$LAB_DIR/state.sqlite`` (WAL; in memory without LAB_DIR). Every write commits
before it returns, so values and fencing tokens survive a SIGKILL of the state service. Lock
holdings themselves are not stored (see state_locks.py): after a restart every lock is free, but
its next fencing token is still larger than any token granted before.

    store = StateStore("/lab/state.sqlite")
    store.compare_and_swap("counter", 0, "1")   # -> (True, StateValue(version=1))
"""

from __future__ import annotations

import sqlite3
import time

from runtime.v1 import state_pb2

MAX_KEY_CHARS = 256
MAX_VALUE_BYTES = 64 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS fencing (
    name TEXT PRIMARY KEY,
    token INTEGER NOT NULL
);
"""


class StateProblem(ValueError):
    """Bad input: the service answers INVALID_ARGUMENT with this message."""


def now_ms() -> int:
    """Unix epoch milliseconds."""
    return time.time_ns() // 1_000_000


def check_key(key: str, what: str = "key") -> None:
    """Non-empty, at most MAX_KEY_CHARS."""
    if not key.strip():
        raise StateProblem(f"{what} is empty; give a {what}, e.g. 'counter'")
    if len(key) > MAX_KEY_CHARS:
        raise StateProblem(f"{what} is {len(key)} characters long; at most {MAX_KEY_CHARS} are allowed")


def check_value(value: str) -> None:
    """At most MAX_VALUE_BYTES (UTF-8)."""
    size = len(value.encode())
    if size > MAX_VALUE_BYTES:
        raise StateProblem(f"value is {size} bytes; at most {MAX_VALUE_BYTES} are allowed")


class StateStore:
    """Versioned state values and fencing counters in one SQLite file (or in memory)."""

    def __init__(self, path: str | None) -> None:
        self.path = path or ":memory:"
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        if path:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # a killed process loses nothing committed
        self._db.executescript(_SCHEMA)

    def get(self, key: str) -> state_pb2.StateValue:
        """The value of ``key``; version 0 when it does not exist."""
        row = self._db.execute(
            "SELECT value, version, updated_at FROM state WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return state_pb2.StateValue(key=key, version=0)
        return state_pb2.StateValue(key=key, value=row[0], version=row[1], updated_at=row[2])

    def _write(self, key: str, value: str, version: int) -> state_pb2.StateValue:
        stored = state_pb2.StateValue(key=key, value=value, version=version, updated_at=now_ms())
        self._db.execute(
            "INSERT OR REPLACE INTO state (key, value, version, updated_at) VALUES (?,?,?,?)",
            (key, value, version, stored.updated_at),
        )
        return stored

    def set(self, key: str, value: str) -> state_pb2.StateValue:
        """Unconditional write; the version goes up by one."""
        check_key(key)
        check_value(value)
        with self._transaction():
            return self._write(key, value, self.get(key).version + 1)

    def compare_and_swap(
        self, key: str, expected_version: int, new_value: str
    ) -> tuple[bool, state_pb2.StateValue]:
        """Write only if the key is at ``expected_version`` (0: only if absent).

        Returns:
            (swapped, the value now stored).
        """
        check_key(key)
        check_value(new_value)
        if expected_version < 0:
            raise StateProblem(
                f"expected_version is {expected_version}; use 0 (create) or a version from Get"
            )
        with self._transaction():
            current = self.get(key)
            if current.version != expected_version:
                return False, current
            return True, self._write(key, new_value, current.version + 1)

    def next_token(self, name: str) -> int:
        """The next fencing token of lock ``name`` (1, 2, 3, ... across restarts)."""
        with self._transaction():
            row = self._db.execute("SELECT token FROM fencing WHERE name = ?", (name,)).fetchone()
            token = (row[0] if row else 0) + 1
            self._db.execute("INSERT OR REPLACE INTO fencing (name, token) VALUES (?, ?)", (name, token))
        return token

    def keys(self) -> list[state_pb2.StateValue]:
        """Every stored value, sorted by key."""
        rows = self._db.execute("SELECT key, value, version, updated_at FROM state ORDER BY key")
        return [state_pb2.StateValue(key=k, value=v, version=n, updated_at=t) for k, v, n, t in rows]

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def close(self) -> None:
        """Close the file."""
        self._db.close()


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
