"""The config service on etcd (``store: etcd``): one key per config entry, watches as etcd watches.

Keys (under the session prefix, ``/runtime-lab/`` by default; names URL-quoted so a ``/`` in a
namespace cannot reach into another one):

    config/values/<namespace>/<key>   {"value", "value_type", "updated_at"}; the lab's version is
                                      etcd's per-key ``version`` (1, 2, 3 ... as in SQLite)
    config/schemas/<namespace>        the ConfigSchema, serialized

History: today's API needs only each key's current version (``expected_version`` checks and the
version in every value); etcd keeps every earlier value as an older revision until compaction, so
``etcdctl get --rev=R`` shows what a key held before, and nothing extra is stored for it.

SetConfig reads the key, checks ``expected_version``, and writes in a transaction comparing the
key's ``mod_revision`` with the one it read: another writer in between makes an unconditional set
retry, and a conditional one fail with the same VersionConflict as SQLite. WatchConfig reads at
revision R and watches from R+1, so nothing is missed or doubled, across member failures too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import quote as url_quote
from urllib.parse import unquote

from runtime.agent import config_schema
from runtime.agent.config_schema import SchemaViolation
from runtime.client.etcd import (
    EtcdSession,
    StoreChoice,
    delete_op,
    get_op,
    mod_is,
    prefix_end,
    put_op,
    txn_request,
)
from runtime.services.config.store import (
    ConfigProblem,
    VersionConflict,
    _conform,
    check_name,
    normalize,
    now_ms,
    tombstone,
)
from runtime.services.watchers import Watcher
from runtime.v1 import config_pb2

log = logging.getLogger("runtime.services.config")


def _part(text: str) -> str:
    return url_quote(text, safe="")


class EtcdConfig:
    """ConfigBackend over an etcd cluster (see the module docstring)."""

    def __init__(self, choice: StoreChoice, *, session: EtcdSession | None = None, prefix: str = "") -> None:
        self.session = session or (EtcdSession(choice, prefix) if prefix else EtcdSession(choice))
        self._values = self.session.key("config", "values", "")

    def _key(self, namespace: str, key: str) -> bytes:
        return self._values + f"{_part(namespace)}/{_part(key)}".encode()

    def _namespace_prefix(self, namespace: str) -> bytes:
        return self._values + f"{_part(namespace)}/".encode() if namespace else self._values

    def _value(self, kv: Any) -> config_pb2.ConfigValue:
        ns, _, key = kv.key[len(self._values) :].decode().partition("/")
        data = json.loads(kv.value)
        return config_pb2.ConfigValue(
            namespace=unquote(ns), key=unquote(key), value=data["value"], value_type=data["value_type"],
            version=kv.version, updated_at=data["updated_at"],
        )  # fmt: skip

    async def get(self, namespace: str, key: str) -> config_pb2.ConfigValue | None:
        """See ConfigBackend."""
        _, kvs = await self.session.range(self._key(namespace, key))
        return self._value(kvs[0]) if kvs else None

    async def set(
        self, namespace: str, key: str, value: str, value_type: str, expected_version: int = 0
    ) -> config_pb2.ConfigValue:
        """See ConfigBackend."""
        check_name("namespace", namespace)
        check_name("key", key)
        spec = config_schema.spec_of(await self.schema(namespace), key)
        if spec is None:
            value, value_type = normalize(value, value_type)
        else:
            value, value_type = _conform(spec, namespace, value, value_type)
        k = self._key(namespace, key)
        while True:
            _, kvs = await self.session.range(k)
            version = kvs[0].version if kvs else 0
            if expected_version and expected_version != version:
                raise VersionConflict(
                    f"{namespace}/{key} is at version {version}, not {expected_version}; "
                    "read it again (GetConfig) and retry with its current version"
                )
            body = json.dumps({"value": value, "value_type": value_type, "updated_at": now_ms()}).encode()
            seen = kvs[0].mod_revision if kvs else 0
            reply = await self.session.txn(txn_request([mod_is(k, seen)], [put_op(k, body), get_op(k)], []))
            if reply.succeeded:
                return self._value(reply.responses[1].response_range.kvs[0])
            # Another writer came between our read and our write: read again (a conditional set
            # then fails above with the version that writer made).

    async def delete(self, namespace: str = "", key: str = "") -> list[config_pb2.ConfigValue]:
        """See ConfigBackend (watchers learn of it from etcd's DELETE events)."""
        if key and not namespace:
            raise ConfigProblem("a key to delete needs its namespace")
        if key:
            _, kvs = await self.session.range(self._key(namespace, key))
        else:
            prefix = self._namespace_prefix(namespace)
            _, kvs = await self.session.range(prefix, prefix_end(prefix))
        gone = []
        for kv in kvs:  # each only if unchanged since read: a concurrent set wins over the reset
            reply = await self.session.txn(
                txn_request([mod_is(kv.key, kv.mod_revision)], [delete_op(kv.key)], [])
            )
            if reply.succeeded:
                gone.append(self._value(kv))
        return sorted(gone, key=lambda v: (v.namespace, v.key))

    async def set_schema(self, schema: config_pb2.ConfigSchema) -> list[config_pb2.ConfigValue]:
        """See ConfigBackend."""
        check_name("namespace", schema.namespace)
        for spec in schema.keys:
            check_name("key", spec.key)
        try:
            config_schema.check_schema(schema)
        except ValueError as exc:
            raise ConfigProblem(str(exc)) from None
        stored = config_schema.stamp(schema)
        key = self.session.key("config", "schemas", _part(schema.namespace))
        await self.session.txn(txn_request([], [put_op(key, stored.SerializeToString())], []))
        invalid = []
        for value in await self.list(schema.namespace):
            spec = config_schema.spec_of(stored, value.key)
            if spec is not None:
                try:
                    config_schema.check(spec, value.value, value.namespace)
                except SchemaViolation:
                    invalid.append(value)
        return invalid

    async def schema(self, namespace: str) -> config_pb2.ConfigSchema | None:
        """See ConfigBackend."""
        _, kvs = await self.session.range(self.session.key("config", "schemas", _part(namespace)))
        return config_pb2.ConfigSchema.FromString(kvs[0].value) if kvs else None

    async def list(self, namespace: str = "") -> list[config_pb2.ConfigValue]:
        """See ConfigBackend."""
        prefix = self._namespace_prefix(namespace)
        _, kvs = await self.session.range(prefix, prefix_end(prefix))
        return sorted((self._value(kv) for kv in kvs), key=lambda v: (v.namespace, v.key))

    async def watch(self, namespace: str, key: str) -> AsyncGenerator[config_pb2.ConfigValue, None]:
        """See ConfigBackend."""
        if key:
            start, end = self._key(namespace, key), None
        else:
            start = self._namespace_prefix(namespace)
            end = prefix_end(start)
        revision, kvs = await self.session.range(start, end)
        for value in sorted((self._value(kv) for kv in kvs), key=lambda v: v.key):
            yield value
        queue: Watcher[config_pb2.ConfigValue] = Watcher(lambda _v: True)
        pump = asyncio.create_task(self._pump(start, end, revision + 1, queue), name="config-watch")
        try:
            while True:
                yield await queue.next()
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            if queue.dropped:
                log.warning("a slow watcher of %s/%s lost %d changes", namespace, key or "*", queue.dropped)

    async def _pump(
        self, start: bytes, end: bytes | None, revision: int, queue: Watcher[config_pb2.ConfigValue]
    ) -> None:
        async for event in self.session.watch(start, end, revision):
            if event.kind == "PUT":
                queue.put(self._value(event.kv))
            elif event.kind == "DELETE":
                ns, _, key = event.kv.key[len(self._values) :].decode().partition("/")
                gone = config_pb2.ConfigValue(namespace=unquote(ns), key=unquote(key))
                queue.put(tombstone(gone, await self.schema(gone.namespace)))

    async def close(self) -> None:
        """See ConfigBackend."""
        await self.session.close()
