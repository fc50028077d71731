"""The config service's store seam: what ConfigService needs, and the local (SQLite) implementation.

    ConfigBackend    the protocol: get, set, delete, set_schema, schema, list, watch, close
    ├── LocalConfig  ConfigStore (SQLite) + Watchers: the default, ``store: local``
    └── EtcdConfig   runtime/services/config/etcd_store.py, ``store: etcd``

Both validate with the same rules (runtime/services/config/store.py, runtime/agent/config_schema.py)
and raise the same exceptions (ConfigProblem, SchemaViolation, VersionConflict), so the servicer's
statuses and messages do not depend on the store. ``make_backend`` picks one from ``LAB_STORE``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Protocol

from runtime.client.store_choice import StoreChoice
from runtime.identity import CONFIG_DB_FILE, Identity
from runtime.services.config.store import ConfigStore, tombstone
from runtime.services.watchers import Watchers
from runtime.v1 import config_pb2

log = logging.getLogger("runtime.services.config")


class ConfigBackend(Protocol):
    """Versioned config values, namespace schemas and watches: what ConfigService calls."""

    async def get(self, namespace: str, key: str) -> config_pb2.ConfigValue | None:
        """The value of one key, or None."""
        ...

    async def set(
        self, namespace: str, key: str, value: str, value_type: str, expected_version: int = 0
    ) -> config_pb2.ConfigValue:
        """Validate and store; the key's version goes up by one (ConfigProblem, VersionConflict)."""
        ...

    async def delete(self, namespace: str = "", key: str = "") -> list[config_pb2.ConfigValue]:
        """Remove a key, a namespace (key empty) or everything; returns the removed values.

        Watchers of each removed key get its ``tombstone`` (deleted, value = schema default).
        """
        ...

    async def set_schema(self, schema: config_pb2.ConfigSchema) -> list[config_pb2.ConfigValue]:
        """Store a namespace's schema; returns stored values that break it."""
        ...

    async def schema(self, namespace: str) -> config_pb2.ConfigSchema | None:
        """The registered schema of ``namespace``, or None."""
        ...

    async def list(self, namespace: str = "") -> list[config_pb2.ConfigValue]:
        """Every value of ``namespace`` (all when empty), sorted by namespace and key."""
        ...

    def watch(self, namespace: str, key: str) -> AsyncGenerator[config_pb2.ConfigValue, None]:
        """Current values (of the key, or the namespace when key is empty), then every change."""
        ...

    async def close(self) -> None:
        """Release files and connections."""
        ...


class LocalConfig:
    """The default store: one SQLite file, watchers fed by this process's writes."""

    def __init__(self, store: ConfigStore) -> None:
        self.store = store
        self.watchers: Watchers[config_pb2.ConfigValue] = Watchers()

    async def get(self, namespace: str, key: str) -> config_pb2.ConfigValue | None:
        """See ConfigBackend."""
        return self.store.get(namespace, key)

    async def set(
        self, namespace: str, key: str, value: str, value_type: str, expected_version: int = 0
    ) -> config_pb2.ConfigValue:
        """See ConfigBackend."""
        stored = self.store.set(namespace, key, value, value_type, expected_version)
        self.watchers.publish(stored)
        return stored

    async def delete(self, namespace: str = "", key: str = "") -> list[config_pb2.ConfigValue]:
        """See ConfigBackend."""
        gone = self.store.delete(namespace, key)
        for value in gone:
            self.watchers.publish(tombstone(value, self.store.schema(value.namespace)))
        return gone

    async def set_schema(self, schema: config_pb2.ConfigSchema) -> list[config_pb2.ConfigValue]:
        """See ConfigBackend."""
        return self.store.set_schema(schema)

    async def schema(self, namespace: str) -> config_pb2.ConfigSchema | None:
        """See ConfigBackend."""
        return self.store.schema(namespace)

    async def list(self, namespace: str = "") -> list[config_pb2.ConfigValue]:
        """See ConfigBackend."""
        return self.store.list(namespace)

    async def watch(self, namespace: str, key: str) -> AsyncGenerator[config_pb2.ConfigValue, None]:
        """See ConfigBackend."""
        # Subscribe and read the snapshot with no await in between: nothing is missed or doubled.
        w = self.watchers.add(lambda v: v.namespace == namespace and (not key or v.key == key))
        try:
            current = [self.store.get(namespace, key)] if key else self.store.list(namespace)
            for value in current:
                if value is not None:
                    yield value
            while True:
                yield await w.next()
        finally:
            self.watchers.remove(w)
            if w.dropped:
                log.warning("a slow watcher of %s/%s lost %d changes", namespace, key or "*", w.dropped)

    async def close(self) -> None:
        """See ConfigBackend."""
        self.store.close()


def as_backend(store: ConfigStore | ConfigBackend) -> ConfigBackend:
    """A ConfigStore (what callers built before the seam) wrapped as LocalConfig; a backend as is."""
    return LocalConfig(store) if isinstance(store, ConfigStore) else store


def make_backend(identity: Identity, choice: StoreChoice) -> ConfigBackend:
    """``LocalConfig`` on ``$LAB_DIR/config.sqlite`` (in memory without LAB_DIR), or ``EtcdConfig``."""
    if choice.is_etcd:
        from runtime.services.config.etcd_store import EtcdConfig

        return EtcdConfig(choice)
    return LocalConfig(ConfigStore(identity.lab_path(CONFIG_DB_FILE)))
