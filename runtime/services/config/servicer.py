"""The config service: runtime configuration that services follow without a restart (seed 3.1).

    python -m runtime.services.config    # through the agent: binds 127.0.0.1:LAB_PORT, READY port=N

Values live in ``$LAB_DIR/config.sqlite`` (WAL; without LAB_DIR in memory), one row per
(namespace, key) with a version that goes up by one per SetConfig. WatchConfig first sends the
current values of a key (or of a whole namespace when the key is empty), then every change;
each watcher has a bounded queue (a slow one loses its oldest changes).

Bad input answers INVALID_ARGUMENT (empty or too long names, unknown value_type, a value that
does not parse as its type, values over 64 KiB); an unknown key answers NOT_FOUND; a stale
expected_version answers FAILED_PRECONDITION naming the current version.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc

from runtime.agent import Agent
from runtime.identity import CONFIG_DB_FILE, CONFIG_GRPC_SERVICE, lab_file
from runtime.services.config.store import ConfigProblem, ConfigStore, VersionConflict, check_name
from runtime.services.watchers import Watchers
from runtime.v1 import config_pb2, config_pb2_grpc

log = logging.getLogger("runtime.services.config")

SERVICE_NAME = "config"


class ConfigService(config_pb2_grpc.ConfigServiceServicer):
    """GetConfig / SetConfig / WatchConfig / ListConfigs over one ConfigStore."""

    def __init__(self, store: ConfigStore) -> None:
        self.store = store
        self.watchers: Watchers[config_pb2.ConfigValue] = Watchers()

    async def GetConfig(  # noqa: N802 (gRPC method name)
        self, request: config_pb2.ConfigKey, context: grpc.aio.ServicerContext
    ) -> config_pb2.ConfigValue:
        """The value of one key; NOT_FOUND names namespace and key."""
        await _check_names(context, request.namespace, request.key)
        value = self.store.get(request.namespace, request.key)
        if value is not None:
            return value
        known = ", ".join(v.key for v in self.store.list(request.namespace)) or "none"
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
        try:
            stored = self.store.set(
                request.namespace, request.key, request.value, request.value_type, request.expected_version
            )
        except ConfigProblem as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{request.namespace}/{request.key}: {exc}")
        except VersionConflict as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        log.info(
            "config %s/%s = %s (%s, version %d)",
            stored.namespace, stored.key, stored.value[:80], stored.value_type, stored.version,
        )  # fmt: skip
        self.watchers.publish(stored)
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
        # Subscribe and read the snapshot with no await in between: nothing is missed or doubled.
        w = self.watchers.add(lambda v: v.namespace == ns and (not key or v.key == key))
        try:
            current = [self.store.get(ns, key)] if key else self.store.list(ns)
            for value in current:
                if value is not None:
                    yield value
            while True:
                yield await w.next()
        finally:
            self.watchers.remove(w)
            if w.dropped:
                log.warning("a slow watcher of %s/%s lost %d changes", ns, key or "*", w.dropped)

    async def ListConfigs(  # noqa: N802
        self, request: config_pb2.ConfigNamespace, context: grpc.aio.ServicerContext
    ) -> config_pb2.ConfigList:
        """Every value of a namespace (all namespaces when empty)."""
        return config_pb2.ConfigList(values=self.store.list(request.namespace))


async def _check_names(context: grpc.aio.ServicerContext, namespace: str, key: str) -> None:
    try:
        check_name("namespace", namespace)
        check_name("key", key)
    except ConfigProblem as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))


def make_store() -> ConfigStore:
    """``$LAB_DIR/config.sqlite``, or an in-memory store without LAB_DIR."""
    return ConfigStore(lab_file(CONFIG_DB_FILE))


async def main() -> None:
    """Serve the config service through the agent until SIGTERM."""
    store = make_store()
    try:
        agent = Agent([CONFIG_GRPC_SERVICE], default_service=SERVICE_NAME)
        config_pb2_grpc.add_ConfigServiceServicer_to_server(ConfigService(store), agent.server)
        await agent.run()
    finally:
        store.close()
