"""Follow one config namespace live from inside a service (asyncio).

    watch = ConfigWatch("calculator", on_change=lambda key, value: ...)
    watch.start()                      # background task; returns at once
    watch.values.get("max_connections")  # the current ConfigValue, or None
    await watch.stop()

The task finds the config service through the broker (``LAB_BROKER_ADDR``), calls
WatchConfig(namespace) — current values first, then every change — and reconnects with backoff
when the config service restarts. While none is registered (the lab starts it beside this
service, or it is not part of this lab) the task waits on the broker's watch for one instead of
looking it up again and again. Until it has values the service runs on its own defaults, so a
service keeps working in a lab without a config service.

With a ``schema`` (runtime/agent/config_schema.py) the watch registers it with the config service
on every connect, so bad values are refused before they are stored, and it checks every value it
receives against it: a value that breaks it (stored before the schema existed, or by a config
service that does not check) is not applied. The key keeps its last good value (or the service's
default) and the log says why, once per bad version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import grpc

from runtime.agent import config_schema
from runtime.agent.lookup import find_or_wait
from runtime.errors import DiscoveryError, NoInstances
from runtime.identity import CONFIG_GRPC_SERVICE, broker_address_from_env
from runtime.v1 import config_pb2, config_pb2_grpc

log = logging.getLogger("runtime.agent.config_watch")

RECONNECT_START_S = 0.1
RECONNECT_MAX_S = 2.0
REGISTER_TIMEOUT_S = 5.0
CONFIG_WAIT_S = 30.0  # none registered: wait this long on the broker's watch, then look again


class ConfigWatch:
    """The live values of one namespace, kept current by a background task.

    Args:
        namespace: the config namespace, e.g. ``"calculator"``.
        on_change: called as ``on_change(key, value)`` for every value received (snapshot and
            changes), on the event loop; exceptions are logged and ignored.
        broker_address: default ``$LAB_BROKER_ADDR``; empty means there is nothing to follow.
        schema: the namespace's keys, types and ranges; registered on connect and enforced on
            every value received (see the module docstring).
    """

    def __init__(
        self,
        namespace: str,
        on_change: Callable[[str, config_pb2.ConfigValue], object] | None = None,
        broker_address: str | None = None,
        schema: config_pb2.ConfigSchema | None = None,
    ) -> None:
        self.namespace = namespace
        self.schema = schema
        self.on_change = on_change
        self.broker_address = broker_address_from_env() if broker_address is None else broker_address
        self.values: dict[str, config_pb2.ConfigValue] = {}  # the last good value of each key
        self.refused: dict[str, config_pb2.ConfigValue] = {}  # the newest bad value of each key
        self._schema_problem = ""
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start following (no-op without a broker address)."""
        if self._task is None and self.broker_address:
            self._task = asyncio.get_running_loop().create_task(
                self._follow(), name=f"config-watch-{self.namespace}"
            )

    async def _follow(self) -> None:
        from runtime.client.discovery_aio import connect_aio

        backoff = RECONNECT_START_S
        while True:
            channel = None
            missing = False
            try:
                channel = await connect_aio(CONFIG_GRPC_SERVICE, self.broker_address)
                stub = config_pb2_grpc.ConfigServiceStub(channel)
                await self._register_schema(stub)
                call = stub.WatchConfig(config_pb2.ConfigKey(namespace=self.namespace))
                try:
                    async for value in call:
                        self.connected.set()
                        backoff = RECONNECT_START_S
                        self._apply(value)
                finally:
                    call.cancel()
            except NoInstances as exc:
                missing = True
                log.debug("config watch of %s: %s; waiting for one", self.namespace, exc)
            except (DiscoveryError, grpc.aio.AioRpcError) as exc:
                log.debug("config watch of %s: %s; retrying", self.namespace, exc)
            finally:
                self.connected.clear()
                if channel is not None:
                    await channel.close()
            self.reconnects += 1
            if missing and await self._config_service_appeared():
                continue  # at once: at lab start it registers a moment after this service
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)

    async def _config_service_appeared(self) -> bool:
        """Wait (on the broker's watch, up to CONFIG_WAIT_S) until a config service registers."""
        try:
            return bool(await find_or_wait(self.broker_address, CONFIG_GRPC_SERVICE, CONFIG_WAIT_S))
        except grpc.aio.AioRpcError as exc:
            log.debug("config watch of %s: broker: %s; retrying", self.namespace, exc.code().name)
            return False  # the broker did not answer: back off as for any other failure

    async def _register_schema(self, stub: config_pb2_grpc.ConfigServiceStub) -> None:
        # On every connect: a config service that restarted from an empty lab dir learns it again.
        if self.schema is None:
            return
        try:
            ack = await stub.RegisterSchema(self.schema, timeout=REGISTER_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise  # reconnect and try again
            # UNIMPLEMENTED (an older config service) or a schema it refuses: values are still
            # checked here, on receipt.
            problem = f"{exc.code().name}: {exc.details()}"
            if problem != self._schema_problem:  # once, not on every reconnect
                log.warning("config schema of %s not registered: %s", self.namespace, problem)
                self._schema_problem = problem
            return
        self._schema_problem = ""
        if ack.invalid:
            log.warning("config %s", ack.message)

    def _apply(self, value: config_pb2.ConfigValue) -> None:
        old = self.values.get(value.key)
        if old is not None and old.version >= value.version and old.value == value.value:
            return  # the snapshot after a reconnect repeats what we have
        spec = config_schema.spec_of(self.schema, value.key)
        if spec is not None:
            try:
                config_schema.check(spec, value.value, self.namespace)
            except config_schema.SchemaViolation as exc:
                self._refuse(value, old, spec, str(exc))
                return
        self.refused.pop(value.key, None)
        self.values[value.key] = value
        if self.on_change is not None:
            try:
                self.on_change(value.key, value)
            except Exception:  # a bug in the service's callback must not end the watch
                log.exception("config change callback failed for %s/%s", self.namespace, value.key)

    def _refuse(
        self,
        value: config_pb2.ConfigValue,
        old: config_pb2.ConfigValue | None,
        spec: config_pb2.ConfigKeySpec,
        why: str,
    ) -> None:
        seen = self.refused.get(value.key)
        self.refused[value.key] = value
        if seen is not None and seen.version == value.version:
            return  # said once already (a reconnect repeats the snapshot)
        if old is not None:
            kept = f"keeping the last good value {old.value!r} (version {old.version})"
        else:
            kept = (
                f"keeping the default {spec.default_value!r}" if spec.default_value else "keeping the default"
            )
        log.warning("config version %d refused: %s; %s", value.version, why, kept)

    async def stop(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
