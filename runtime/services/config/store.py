"""SQLite persistence of config values: one row per (namespace, key), WAL, versions per key.

The file is ``$LAB_DIR/config.sqlite``; without LAB_DIR the store lives in memory (tests, demos).
Every write commits before it returns, so a value survives a SIGKILL of the service.

    store = ConfigStore("/lab/config.sqlite")
    store.set("calculator", "max_connections", "4", "int")   # -> ConfigValue(version=1)
"""

from __future__ import annotations

import json
import sqlite3
import time

from runtime.v1 import config_pb2

VALUE_TYPES = ("string", "int", "bool", "json")
MAX_NAME_CHARS = 128  # namespace and key
MAX_VALUE_BYTES = 64 * 1024
BOOL_WORDS = {"true": "true", "false": "false", "1": "true", "0": "false", "yes": "true", "no": "false"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS configs (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    value_type TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
);
"""
_COLUMNS = "namespace, key, value, value_type, version, updated_at"


class ConfigProblem(ValueError):
    """Bad input: the service answers INVALID_ARGUMENT with this message."""


class VersionConflict(Exception):
    """expected_version did not match: the service answers FAILED_PRECONDITION."""


def now_ms() -> int:
    """Unix epoch milliseconds."""
    return time.time_ns() // 1_000_000


def check_name(what: str, name: str) -> None:
    """A namespace or key must be non-empty and at most MAX_NAME_CHARS long."""
    if not name.strip():
        raise ConfigProblem(f"{what} is empty; give a {what}, e.g. 'calculator'")
    if len(name) > MAX_NAME_CHARS:
        raise ConfigProblem(f"{what} is {len(name)} characters long; at most {MAX_NAME_CHARS} are allowed")


def normalize(value: str, value_type: str) -> tuple[str, str]:
    """Check ``value`` against ``value_type`` ("" means string); returns the stored (value, type).

    Raises:
        ConfigProblem: unknown type, too large, or the value does not parse as its type.
    """
    value_type = value_type or "string"
    if value_type not in VALUE_TYPES:
        raise ConfigProblem(f"unknown value_type {value_type!r}; use one of {', '.join(VALUE_TYPES)}")
    size = len(value.encode())
    if size > MAX_VALUE_BYTES:
        raise ConfigProblem(f"value is {size} bytes; at most {MAX_VALUE_BYTES} are allowed")
    if value_type == "int":
        try:
            return str(int(value.strip())), value_type
        except ValueError:
            raise ConfigProblem(
                f"value {value!r} is not an int (value_type int): use digits, e.g. '4'"
            ) from None
    if value_type == "bool":
        word = BOOL_WORDS.get(value.strip().lower())
        if word is None:
            raise ConfigProblem(f"value {value!r} is not a bool (value_type bool): use 'true' or 'false'")
        return word, value_type
    if value_type == "json":
        try:
            json.loads(value)
        except ValueError as exc:
            raise ConfigProblem(f"value is not valid JSON (value_type json): {exc}") from None
    return value, value_type


def _value(row: tuple) -> config_pb2.ConfigValue:
    ns, key, value, value_type, version, updated_at = row
    return config_pb2.ConfigValue(
        namespace=ns, key=key, value=value, value_type=value_type, version=version, updated_at=updated_at
    )


class ConfigStore:
    """Config values in one SQLite file (or in memory with ``path=None``)."""

    def __init__(self, path: str | None) -> None:
        self.path = path or ":memory:"
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        if path:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # a killed process loses nothing committed
        self._db.executescript(_SCHEMA)

    def get(self, namespace: str, key: str) -> config_pb2.ConfigValue | None:
        """The value of one key, or None."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM configs WHERE namespace = ? AND key = ?", (namespace, key)
        ).fetchone()
        return _value(row) if row else None

    def set(
        self, namespace: str, key: str, value: str, value_type: str, expected_version: int = 0
    ) -> config_pb2.ConfigValue:
        """Validate and store; the key's version goes up by one.

        Raises:
            ConfigProblem: bad namespace, key, type or value.
            VersionConflict: ``expected_version`` (non-zero) is not the current version.
        """
        check_name("namespace", namespace)
        check_name("key", key)
        value, value_type = normalize(value, value_type)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            current = self.get(namespace, key)
            version = current.version if current else 0
            if expected_version and expected_version != version:
                raise VersionConflict(
                    f"{namespace}/{key} is at version {version}, not {expected_version}; "
                    "read it again (GetConfig) and retry with its current version"
                )
            stored = config_pb2.ConfigValue(
                namespace=namespace, key=key, value=value, value_type=value_type,
                version=version + 1, updated_at=now_ms(),
            )  # fmt: skip
            self._db.execute(
                f"INSERT OR REPLACE INTO configs ({_COLUMNS}) VALUES (?,?,?,?,?,?)",
                (namespace, key, value, value_type, stored.version, stored.updated_at),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return stored

    def list(self, namespace: str = "") -> list[config_pb2.ConfigValue]:
        """Every value of ``namespace`` (all namespaces when empty), sorted by namespace and key."""
        if namespace:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM configs WHERE namespace = ? ORDER BY key", (namespace,)
            )
        else:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM configs ORDER BY namespace, key")
        return [_value(r) for r in rows]

    def close(self) -> None:
        """Close the file."""
        self._db.close()
