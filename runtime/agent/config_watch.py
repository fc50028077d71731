"""Follow one config namespace live from inside a service (asyncio).

    watch = ConfigWatch("calculator", on_change=lambda key, value: ...)
    watch.start()                      # background task; returns at once
    watch.values.get("max_connections")  # the current ConfigValue, or None
    await watch.stop()

The task finds the config service through the broker (``LAB_BROKER_ADDR``), calls
WatchConfig(namespace) — current values first, then every change — and reconnects with backoff
when the config service is missing or restarts. Until it has values the service runs on its own
defaults, so a service keeps working in a lab without a config service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import grpc

from runtime.errors import DiscoveryError
from runtime.identity import CONFIG_GRPC_SERVICE, broker_address_from_env
from runtime.v1 import config_pb2, config_pb2_grpc

log = logging.getLogger("runtime.agent.config_watch")

RECONNECT_START_S = 0.1
RECONNECT_MAX_S = 2.0


class ConfigWatch:
    """The live values of one namespace, kept current by a background task.

    Args:
        namespace: the config namespace, e.g. ``"calculator"``.
        on_change: called as ``on_change(key, value)`` for every value received (snapshot and
            changes), on the event loop; exceptions are logged and ignored.
        broker_address: default ``$LAB_BROKER_ADDR``; empty means there is nothing to follow.
    """

    def __init__(
        self,
        namespace: str,
        on_change: Callable[[str, config_pb2.ConfigValue], object] | None = None,
        broker_address: str | None = None,
    ) -> None:
        self.namespace = namespace
        self.on_change = on_change
        self.broker_address = broker_address_from_env() if broker_address is None else broker_address
        self.values: dict[str, config_pb2.ConfigValue] = {}
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
            try:
                channel = await connect_aio(CONFIG_GRPC_SERVICE, self.broker_address)
                call = config_pb2_grpc.ConfigServiceStub(channel).WatchConfig(
                    config_pb2.ConfigKey(namespace=self.namespace)
                )
                try:
                    async for value in call:
                        self.connected.set()
                        backoff = RECONNECT_START_S
                        self._apply(value)
                finally:
                    call.cancel()
            except (DiscoveryError, grpc.aio.AioRpcError) as exc:
                log.debug("config watch of %s: %s; retrying", self.namespace, exc)
            finally:
                self.connected.clear()
                if channel is not None:
                    await channel.close()
            self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)

    def _apply(self, value: config_pb2.ConfigValue) -> None:
        old = self.values.get(value.key)
        if old is not None and old.version >= value.version and old.value == value.value:
            return  # the snapshot after a reconnect repeats what we have
        self.values[value.key] = value
        if self.on_change is not None:
            try:
                self.on_change(value.key, value)
            except Exception:  # a bug in the service's callback must not end the watch
                log.exception("config change callback failed for %s/%s", self.namespace, value.key)

    async def stop(self) -> None:
        """Stop following."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
