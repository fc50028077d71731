"""The calculator's live settings, read from config namespace ``calculator`` (no restart needed).

======================  =======  ==========================================================
key                     default  meaning
======================  =======  ==========================================================
``max_connections``     1000     calls served at once; beyond it a call gets
                                 RESOURCE_EXHAUSTED "calculator-1 is at max_connections=N"
``work_ms``             0        simulated work per call (makes concurrency visible)
``degraded_p99_ms``     250      p99 latency above which the instance reports DEGRADED
======================  =======  ==========================================================

The calculator registers this table as the namespace's schema (``SCHEMA``) when it connects to
the config service, which then refuses a bad value (``max_connections = "abc"`` or ``-5``) with
INVALID_ARGUMENT before storing it. A bad value it still meets (stored before the schema existed)
is not applied: the key keeps its last good value, or its default, and the log says why. Without
a config service (or a broker) the defaults apply and the calculator works as before.

    settings = Settings(identity.instance_id)
    settings.start()                     # follows the config service in the background
    async with settings.admit(context):  # in each RPC: in-flight limit + simulated work
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import grpc

from runtime.agent import config_schema
from runtime.agent.config_watch import ConfigWatch
from runtime.errors import quote
from runtime.v1 import config_pb2

log = logging.getLogger("calculator.settings")

NAMESPACE = "calculator"
DEFAULTS = {"max_connections": 1000, "work_ms": 0, "degraded_p99_ms": 250}
LIMITS = {"max_connections": (1, 100_000), "work_ms": (0, 10_000), "degraded_p99_ms": (1, 600_000)}
MEANING = {
    "max_connections": "calls served at once; beyond it a call gets RESOURCE_EXHAUSTED",
    "work_ms": "simulated work per call, in milliseconds",
    "degraded_p99_ms": "p99 latency above which the instance reports DEGRADED",
}
SCHEMA = config_schema.schema(
    NAMESPACE,
    *(
        config_schema.int_key(key, *LIMITS[key], default=DEFAULTS[key], description=MEANING[key])
        for key in DEFAULTS
    ),
)


class Settings:
    """Current settings of one calculator instance, updated live from the config service."""

    def __init__(
        self,
        instance_id: str,
        *,
        broker_address: str | None = None,
        on_degraded_p99: Callable[[float], object] | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.values: dict[str, int] = dict(DEFAULTS)
        self.in_flight = 0
        self.rejected = 0
        self._on_degraded_p99 = on_degraded_p99
        schema = config_schema.schema(NAMESPACE, *SCHEMA.keys, registered_by=instance_id)
        self.watch = ConfigWatch(NAMESPACE, self._changed, broker_address, schema=schema)

    @property
    def max_connections(self) -> int:
        return self.values["max_connections"]

    @property
    def work_ms(self) -> int:
        return self.values["work_ms"]

    def start(self) -> None:
        """Follow config namespace ``calculator`` in the background (no-op without a broker)."""
        self.watch.start()

    async def stop(self) -> None:
        """Stop following."""
        await self.watch.stop()

    def _changed(self, key: str, value: config_pb2.ConfigValue) -> None:
        if key not in DEFAULTS:
            return
        lo, hi = LIMITS[key]
        try:
            number: int | None = int(value.value)
        except ValueError:
            number = None
        if number is None or not lo <= number <= hi:
            # The watch checks the schema first, so this is a second line of defence: keep the
            # last good value rather than jump back to the default.
            log.warning(
                "config %s/%s=%s is not an int in %d..%d; keeping %d",
                NAMESPACE, key, quote(value.value), lo, hi, self.values[key],
            )  # fmt: skip
            return
        if self.values[key] != number:
            log.info(
                "%s: %s %d -> %d (config version %d, no restart)",
                self.instance_id,
                key,
                self.values[key],
                number,
                value.version,
            )
        self.values[key] = number
        if key == "degraded_p99_ms" and self._on_degraded_p99 is not None:
            self._on_degraded_p99(float(number))

    @contextlib.asynccontextmanager
    async def admit(self, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        """Serve one call within max_connections (RESOURCE_EXHAUSTED beyond it), after work_ms."""
        limit = self.max_connections
        if self.in_flight >= limit:
            self.rejected += 1
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self.instance_id} is at max_connections={limit}; retry later or raise it in config",
            )
        self.in_flight += 1
        try:
            if self.work_ms:
                await asyncio.sleep(self.work_ms / 1000)
            yield
        finally:
            self.in_flight -= 1
