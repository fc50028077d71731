"""The config service: runtime configuration that services follow without a restart (seed 3.1).

    python -m runtime.services.config    # through the agent: binds 127.0.0.1:LAB_PORT, READY port=N

Values live in ``$LAB_DIR/config.sqlite`` (WAL; without LAB_DIR in memory), one row per
(namespace, key) with a version that goes up by one per SetConfig. WatchConfig first sends the
current values of a key (or of a whole namespace when the key is empty), then every change;
each watcher has a bounded queue (a slow one loses its oldest changes).

Bad input answers INVALID_ARGUMENT (empty or too long names, unknown value_type, a value that
does not parse as its type, values over 64 KiB, a value its namespace's schema does not allow);
an unknown key answers NOT_FOUND; a stale expected_version answers FAILED_PRECONDITION naming the
current version. Caller input is quoted at most 200 characters long.

Schemas: a consumer (the calculator, through its ConfigWatch) registers its keys' types and ranges
with RegisterSchema; SetConfig then refuses "calculator/max_connections = 'abc'" with
"calculator/max_connections must be an integer between 1 and 100000; got 'abc'" before storing
it (rules in runtime/agent/config_schema.py, shared with the consumer).

The store behind it is a ConfigBackend (runtime/services/config/backend.py): SQLite by default,
an etcd cluster with ``store: etcd`` (runtime/services/config/etcd_store.py); statuses and
messages are the same on both. An etcd cluster without quorum answers UNAVAILABLE naming the
members that are down (runtime/agent/store_status.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc

from runtime.client.store_choice import store_from_env
from runtime.errors import listing
from runtime.identity import CONFIG_GRPC_SERVICE, Identity
from runtime.services.config.backend import ConfigBackend, as_backend, make_backend
from runtime.services.config.store import (
    ConfigProblem,
    ConfigStore,
    SchemaViolation,
    VersionConflict,
    check_name,
)
from runtime.services.store_service import serve_with_store
from runtime.v1 import config_pb2, config_pb2_grpc

log = logging.getLogger("runtime.services.config")

SERVICE_NAME = "config"


EVERY_NAMESPACE = "*"  # DeleteConfig's explicit "all of it"


class ConfigService(config_pb2_grpc.ConfigServiceServicer):
    """GetConfig / SetConfig / WatchConfig / ListConfigs over one ConfigBackend.

    A plain ConfigStore (SQLite) is accepted too and served as the local backend.
    """

    def __init__(self, store: ConfigStore | ConfigBackend) -> None:
        self.store = as_backend(store)

    async def GetConfig(  # noqa: N802 (gRPC method name)
        self, request: config_pb2.ConfigKey, context: grpc.aio.ServicerContext
    ) -> config_pb2.ConfigValue:
        """The value of one key; NOT_FOUND names namespace and key."""
        await _check_names(context, request.namespace, request.key)
        value = await self.store.get(request.namespace, request.key)
        if value is not None:
            return value
        known = listing(v.key for v in await self.store.list(request.namespace)) or "none"
        await context.abort(
            grpc.StatusCode.NOT_FOUND,
            f"no config key {request.key!r} in namespace {request.namespace!r} "
            f"(keys there: {known}); set it with SetConfig",
        )
        raise AssertionError("context.abort() raises")  # for type checkers

    async def SetConfig(  # noqa: N802
        self, request: config_pb2.ConfigEntry, context: grpc.aio.ServicerContext
    ) -> config_pb2.ConfigAck:
        """Validate and store a value; watchers see it at once."""
        await _check_names(context, request.namespace, request.key)  # before they appear in a message
        try:
            stored = await self.store.set(
                request.namespace, request.key, request.value, request.value_type, request.expected_version
            )
        except SchemaViolation as exc:
            log.warning("refused %s", exc)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except ConfigProblem as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{request.namespace}/{request.key}: {exc}")
        except VersionConflict as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        log.info(
            "config %s/%s = %s (%s, version %d)",
            stored.namespace, stored.key, stored.value[:80], stored.value_type, stored.version,
        )  # fmt: skip
        return config_pb2.ConfigAck(
            ok=True,
            version=stored.version,
            message=f"{stored.namespace}/{stored.key} is at version {stored.version}",
        )

    async def WatchConfig(  # noqa: N802
        self, request: config_pb2.ConfigKey, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[config_pb2.ConfigValue]:
        """Current values first (of the key, or the whole namespace when key is empty), then changes."""
        ns, key = request.namespace, request.key
        try:
            check_name("namespace", ns)
            if key:
                check_name("key", key)
        except ConfigProblem as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        changes = self.store.watch(ns, key)
        try:
            async for value in changes:
                yield value
        finally:
            await changes.aclose()

    async def RegisterSchema(  # noqa: N802
        self, request: config_pb2.ConfigSchema, context: grpc.aio.ServicerContext
    ) -> config_pb2.ConfigSchemaAck:
        """Store a namespace's schema (replacing any earlier one); names stored values that break it."""
        try:
            invalid = await self.store.set_schema(request)
        except ConfigProblem as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"schema not registered: {exc}")
        ns = request.namespace
        who = f" by {request.registered_by[:80]}" if request.registered_by else ""
        log.info("schema of %s registered%s: %d keys", ns, who, len(request.keys))
        message = f"schema of {ns} registered: {len(request.keys)} keys"
        if invalid:
            names = ", ".join(v.key for v in invalid)
            message += f"; stored values that break it (consumers keep their last good value): {names}"
            log.warning("config %s", message)
        return config_pb2.ConfigSchemaAck(ok=True, message=message, invalid=invalid)

    async def GetSchema(  # noqa: N802
        self, request: config_pb2.ConfigNamespace, context: grpc.aio.ServicerContext
    ) -> config_pb2.ConfigSchema:
        """The registered schema of a namespace; NOT_FOUND when there is none."""
        try:
            check_name("namespace", request.namespace)
        except ConfigProblem as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        found = await self.store.schema(request.namespace)
        if found is None:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no schema registered for namespace {request.namespace!r}; its consumer registers "
                "one when it starts (RegisterSchema)",
            )
        assert found is not None  # abort raised
        return found

    async def DeleteConfig(  # noqa: N802
        self, request: config_pb2.ConfigKey, context: grpc.aio.ServicerContext
    ) -> config_pb2.ConfigDeleteAck:
        """Remove a key, a namespace (key empty) or every value (namespace ``*``); consumers fall back."""
        ns, key = request.namespace, request.key
        if not ns and not key:
            # An unset field must not mean "everything" (like an unset signal must not mean SIGTERM).
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"namespace is empty; name one (e.g. 'calculator') or send {EVERY_NAMESPACE!r} for every namespace",
            )
        if ns == EVERY_NAMESPACE:
            if key:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"a key needs a namespace; {EVERY_NAMESPACE!r} takes no key",
                )
            ns = ""
        try:
            if ns:
                check_name("namespace", ns)
            if key:
                check_name("key", key)
            gone = await self.store.delete(ns, key)
        except ConfigProblem as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        what = f"{ns}/{key}" if key else (f"namespace {ns}" if ns else "every namespace")
        log.info("config deleted %d keys of %s", len(gone), what)
        return config_pb2.ConfigDeleteAck(
            deleted=len(gone),
            message=f"{len(gone)} config keys of {what} deleted; consumers use their defaults",
        )

    async def ListConfigs(  # noqa: N802
        self, request: config_pb2.ConfigNamespace, context: grpc.aio.ServicerContext
    ) -> config_pb2.ConfigList:
        """Every value of a namespace (all namespaces when empty)."""
        return config_pb2.ConfigList(values=await self.store.list(request.namespace))


async def _check_names(context: grpc.aio.ServicerContext, namespace: str, key: str) -> None:
    try:
        check_name("namespace", namespace)
        check_name("key", key)
    except ConfigProblem as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))


def make_store(identity: Identity) -> ConfigBackend:
    """The store ``LAB_STORE`` names: ``$LAB_DIR/config.sqlite`` (in memory without LAB_DIR) or etcd."""
    return make_backend(identity, store_from_env())


async def main() -> None:
    """Serve the config service through the agent until SIGTERM."""
    await serve_with_store(
        CONFIG_GRPC_SERVICE,
        SERVICE_NAME,
        make_store,
        lambda store, server: config_pb2_grpc.add_ConfigServiceServicer_to_server(
            ConfigService(store), server
        ),
    )
