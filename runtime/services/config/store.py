"""SQLite persistence of config values: one row per (namespace, key), WAL, versions per key.

The file is ``$LAB_DIR/config.sqlite``; without LAB_DIR the store lives in memory (tests, demos).
Every write commits before it returns, so a value survives a SIGKILL of the service.

Schemas (runtime/agent/config_schema.py) live in the same file, one per namespace: a key a schema
names only takes values its spec allows, in the spec's type.

    store = ConfigStore("/lab/config.sqlite")
    store.set("calculator", "max_connections", "4", "int")   # -> ConfigValue(version=1)
"""

from __future__ import annotations

import json
import sqlite3
import time

from runtime.agent import config_schema
from runtime.agent.config_schema import BOOL_WORDS, VALUE_TYPES, SchemaViolation
from runtime.errors import quote
from runtime.v1 import config_pb2

MAX_NAME_CHARS = 128  # namespace and key
MAX_VALUE_BYTES = 64 * 1024

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
CREATE TABLE IF NOT EXISTS schemas (
    namespace TEXT PRIMARY KEY,
    schema BLOB NOT NULL
);
"""
_COLUMNS = "namespace, key, value, value_type, version, updated_at"


class ConfigProblem(ValueError):
    """Bad input: the service answers INVALID_ARGUMENT with this message."""


__all__ = ["ConfigProblem", "ConfigStore", "SchemaViolation", "VersionConflict", "check_name", "normalize"]


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
        raise ConfigProblem(f"unknown value_type {quote(value_type)}; use one of {', '.join(VALUE_TYPES)}")
    size = len(value.encode())
    if size > MAX_VALUE_BYTES:
        raise ConfigProblem(f"value is {size} bytes; at most {MAX_VALUE_BYTES} are allowed")
    if value_type == "int":
        try:
            return str(int(value.strip())), value_type
        except ValueError:
            raise ConfigProblem(
                f"value {quote(value)} is not an int (value_type int): use digits, e.g. '4'"
            ) from None
    if value_type == "bool":
        word = BOOL_WORDS.get(value.strip().lower())
        if word is None:
            raise ConfigProblem(
                f"value {quote(value)} is not a bool (value_type bool): use 'true' or 'false'"
            )
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
        self._schemas: dict[str, config_pb2.ConfigSchema] = {}
        for ns, blob in self._db.execute("SELECT namespace, schema FROM schemas"):
            self._schemas[ns] = config_pb2.ConfigSchema.FromString(blob)

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
        spec = config_schema.spec_of(self._schemas.get(namespace), key)
        if spec is None:
            value, value_type = normalize(value, value_type)
        else:
            value, value_type = _conform(spec, namespace, value, value_type)
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

    def delete(self, namespace: str = "", key: str = "") -> list[config_pb2.ConfigValue]:
        """Remove one key, a namespace (key empty) or everything (both empty); returns what went."""
        if key and not namespace:
            raise ConfigProblem("a key to delete needs its namespace")
        gone = [v for v in self.list(namespace) if not key or v.key == key]
        if gone:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "DELETE FROM configs WHERE namespace = ? AND key = ?",
                    [(v.namespace, v.key) for v in gone],
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return gone

    def set_schema(self, schema: config_pb2.ConfigSchema) -> list[config_pb2.ConfigValue]:
        """Store (replace) a namespace's schema; returns stored values that break it.

        Raises:
            ConfigProblem: bad names, or the schema itself is inconsistent.
        """
        check_name("namespace", schema.namespace)
        for spec in schema.keys:
            check_name("key", spec.key)
        try:
            config_schema.check_schema(schema)
        except ValueError as exc:
            raise ConfigProblem(str(exc)) from None
        stored = config_schema.stamp(schema)
        self._db.execute(
            "INSERT OR REPLACE INTO schemas (namespace, schema) VALUES (?, ?)",
            (schema.namespace, stored.SerializeToString()),
        )
        self._schemas[schema.namespace] = stored
        invalid = []
        for value in self.list(schema.namespace):
            spec = config_schema.spec_of(stored, value.key)
            if spec is not None:
                try:
                    config_schema.check(spec, value.value, value.namespace)
                except SchemaViolation:
                    invalid.append(value)
        return invalid

    def schema(self, namespace: str) -> config_pb2.ConfigSchema | None:
        """The registered schema of ``namespace``, or None."""
        return self._schemas.get(namespace)

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


def tombstone(
    value: config_pb2.ConfigValue, schema: config_pb2.ConfigSchema | None
) -> config_pb2.ConfigValue:
    """What watchers see for a removed key: ``deleted``, version 0, the schema's default as value."""
    spec = config_schema.spec_of(schema, value.key)
    return config_pb2.ConfigValue(
        namespace=value.namespace, key=value.key, deleted=True, updated_at=now_ms(),
        value=spec.default_value if spec is not None else "",
        value_type=spec.value_type if spec is not None else value.value_type,
    )  # fmt: skip


def _conform(spec: config_pb2.ConfigKeySpec, namespace: str, value: str, value_type: str) -> tuple[str, str]:
    """Check a value against its key's spec; the spec's type wins over an unset or "string" one."""
    if value_type not in ("", "string", spec.value_type):
        raise SchemaViolation(
            f"{namespace}/{spec.key} is a {spec.value_type} key (its schema says so); "
            f"got value_type {quote(value_type)}"
        )
    size = len(value.encode())
    if size > MAX_VALUE_BYTES:
        raise ConfigProblem(f"value is {size} bytes; at most {MAX_VALUE_BYTES} are allowed")
    return config_schema.check(spec, value, namespace), spec.value_type
