"""Pushes this instance's health to the health service (ReportHealth stream).

The agent calls exactly these:

    reporter = HealthReporter(identity, address="127.0.0.1:PORT", broker_address=...)
    server_interceptors += reporter.interceptors()   # before the server is created
    await reporter.start()          # reports STARTING, keeps reporting in the background
    reporter.set(HealthState.HEALTHY, "serving")
    await reporter.close("shutting down")   # final report (final=True), then closes

The health service is found through the broker (LookupService "runtime.v1.HealthService"). One
stream carries every report; when it breaks (the health service restarted) the reporter looks
the service up again, reconnects and re-sends the current state.

DEGRADED rule: the agent's call path (runtime/agent/call_path.py) times every unary call of the
instance's own services, from the moment it reached the server to its handler's end.
When the rolling p99 latency passes ``DEGRADED_P99_MS`` or more than ``DEGRADED_IN_FLIGHT`` calls
run at once, a HEALTHY instance reports DEGRADED; it reports HEALTHY again only after both stay
below ``RECOVER_RATIO`` of their thresholds for ``RECOVER_HOLD_S`` (hysteresis, so it does not flap).
The agent reads the thresholds from its environment once, at start (runtime/agent/settings.py);
the constants below are their defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator

import grpc

from runtime.agent.lookup import find_or_wait
from runtime.client import auth
from runtime.client.percentiles import RESOLUTION as PERCENTILE_RESOLUTION
from runtime.identity import HEALTH_GRPC_SERVICE, Identity
from runtime.v1 import health_pb2, health_pb2_grpc

log = logging.getLogger("runtime.agent.health")

RECONNECT_INITIAL_S = 0.05
RECONNECT_MAX_S = 0.25
# With no health service registered, wait this long for one (WatchServices), then look again.
HEALTH_WAIT_S = 30.0
FINAL_REPORT_TIMEOUT_S = 1.0

DEGRADED_P99_MS = 250.0
DEGRADED_IN_FLIGHT = 64
RECOVER_RATIO = 0.7
RECOVER_HOLD_S = 2.0
LATENCY_WINDOW_S = 5.0
LATENCY_SAMPLES_MAX = 4096
MIN_SAMPLES = 20  # the p99 of a handful of calls is noise
RULE_CHECK_INTERVAL_S = 0.25
PCT99_CUT = round(99 * PERCENTILE_RESOLUTION / 100)  # the 99th percentile's cut point
# grpc.health.v1 and reflection are the platform's calls, not the instance's work.
UNTIMED_PREFIXES = ("/grpc.",)


def p99_of(values: list[float]) -> float:
    """The p99 of ``values`` (at least two), exactly as ``runtime.client.percentiles.percentile``.

    Same definition (linear interpolation between the two nearest samples, "inclusive"), but only
    the top 1 % is ordered (heapq.nlargest) instead of 999 cut points: 0.4 ms instead of 2.6 ms
    for the 4096 samples the rule holds, four times a second on the service's own event loop.

    >>> from runtime.client.percentiles import percentile
    >>> p99_of([float(v) for v in range(1, 1001)]) == percentile([float(v) for v in range(1, 1001)], 99)
    True
    """
    last = len(values) - 1
    j, delta = divmod(PCT99_CUT * last, PERCENTILE_RESOLUTION)
    top = heapq.nlargest(last - j + 1, values)  # descending: top[last - j] is the j-th smallest
    low = top[last - j]
    high = top[last - j - 1] if last - j >= 1 else low
    return (low * (PERCENTILE_RESOLUTION - delta) + high * delta) / PERCENTILE_RESOLUTION


class DegradedRule:
    """Rolling p99 latency and in-flight count -> degraded or not, with hysteresis.

    Example:
        >>> rule = DegradedRule(p99_ms=100, in_flight=10, recover_hold_s=0)
        >>> for _ in range(50): rule.finished(rule.started(), now=0.0, latency_ms=500)
        >>> rule.evaluate(now=0.0)[0]
        True
    """

    def __init__(
        self,
        *,
        p99_ms: float = DEGRADED_P99_MS,
        in_flight: int = DEGRADED_IN_FLIGHT,
        recover_ratio: float = RECOVER_RATIO,
        recover_hold_s: float = RECOVER_HOLD_S,
        window_s: float = LATENCY_WINDOW_S,
    ) -> None:
        self.p99_ms = p99_ms
        self.in_flight_max = in_flight
        self.recover_ratio = recover_ratio
        self.recover_hold_s = recover_hold_s
        self.window_s = window_s
        # In flight = handlers running. Counted by the agent's call path in a try/finally around
        # the handler, so a call can never be left open (cancelled calls finish too).
        self._running = 0
        self._samples: deque[tuple[float, float]] = deque(maxlen=LATENCY_SAMPLES_MAX)
        self.degraded = False
        self.reason = ""
        self._calm_since: float | None = None
        self.calls = 0  # unary calls timed so far (benchmarks divide CPU time by it)

    @property
    def in_flight(self) -> int:
        """Calls whose handler is running now."""
        return self._running

    def started(self) -> float:
        """A call's handler began; returns the time, for ``finished``."""
        self._running += 1
        return time.monotonic()

    def abandoned(self, started: float) -> None:
        """A call counted by ``started`` turned out not to be timed: uncount it."""
        self._running = max(0, self._running - 1)

    def finished(self, started: float, *, now: float | None = None, latency_ms: float | None = None) -> None:
        """A call ended; its latency counts from ``started`` (the agent passes when it arrived)."""
        now = time.monotonic() if now is None else now
        self.calls += 1
        self._running = max(0, self._running - 1)
        self._samples.append((now, (now - started) * 1000 if latency_ms is None else latency_ms))

    def p99(self, now: float) -> float:
        """p99 latency (ms) of the calls that ended within the window (0 with too few calls)."""
        while self._samples and self._samples[0][0] < now - self.window_s:
            self._samples.popleft()
        if len(self._samples) < MIN_SAMPLES:
            return 0.0
        return p99_of([lat for _, lat in self._samples])

    def evaluate(self, now: float | None = None) -> tuple[bool, str]:
        """Update and return (degraded, reason)."""
        now = time.monotonic() if now is None else now
        p99 = self.p99(now)
        if not self.degraded:
            if p99 > self.p99_ms:
                self.degraded = True
                self.reason = (
                    f"p99 latency {p99:.0f} ms is above {self.p99_ms:.0f} ms (last {self.window_s:g} s)"
                )
            elif self.in_flight > self.in_flight_max:
                self.degraded = True
                self.reason = f"{self.in_flight} calls in flight, more than {self.in_flight_max}"
            self._calm_since = None
            return self.degraded, self.reason
        calm = (
            p99 < self.p99_ms * self.recover_ratio
            and self.in_flight < self.in_flight_max * self.recover_ratio
        )
        if not calm:
            self._calm_since = None
        elif self._calm_since is None:
            self._calm_since = now
        if calm and now - self._calm_since >= self.recover_hold_s:  # type: ignore[operator]
            self.degraded = False
            self.reason = (
                f"recovered: p99 {p99:.0f} ms and {self.in_flight} in flight stayed below "
                f"{self.recover_ratio:.0%} of their thresholds for {self.recover_hold_s:g} s"
            )
            self._calm_since = None
        return self.degraded, self.reason


class HealthReporter:
    """Reports STARTING / HEALTHY / DEGRADED / final states of one instance.

    Args:
        identity: who this instance is (service name, instance id).
        address: where it serves (``127.0.0.1:PORT``), sent with every report.
        broker_address: where to look the health service up.
        health_address: skip the lookup and report straight to this address (tests).
        rule: the DEGRADED rule (default: the default thresholds; the agent passes its settings').
    """

    def __init__(
        self,
        identity: Identity,
        *,
        address: str,
        broker_address: str,
        health_address: str = "",
        rule: DegradedRule | None = None,
    ) -> None:
        self.identity = identity
        self.address = address
        self.broker_address = broker_address
        self.health_address = health_address
        self.state = 0
        self.message = ""
        self.rule = rule if rule is not None else DegradedRule()
        self._final = False
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._rule_task: asyncio.Task[None] | None = None
        self._sent_state: tuple[int, str] | None = None
        self.connected_to = ""
        self.connects = 0
        self.reports_sent = 0

    def interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        """A server interceptor that feeds the DEGRADED rule (the agent's ``CallPath`` does more)."""
        from runtime.agent.call_path import CallPath  # it imports this module

        return [CallPath(rule=self.rule)]

    async def start(self) -> None:
        """Report STARTING and keep reporting in the background."""
        if self._task is not None:
            return
        self._changed = asyncio.Event()
        if not self.state:
            self.set(health_pb2.STARTING, "starting")
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="health reporter")
        self._rule_task = loop.create_task(self._watch_rule(), name="health degraded rule")

    def set(self, state: int, message: str = "") -> None:
        """Record a new state; it is pushed in the background."""
        self.state = state
        self.message = message
        if self._changed is not None:
            self._changed.set()

    def current(self) -> health_pb2.HealthStatus:
        """The status this instance reports now (the DEGRADED rule applied to HEALTHY)."""
        state, message = self.state, self.message
        if state == health_pb2.HEALTHY and self.rule.degraded:
            state, message = health_pb2.DEGRADED, self.rule.reason
        return health_pb2.HealthStatus(
            service_name=self.identity.service_name,
            instance_id=self.identity.instance_id,
            state=state,  # type: ignore[arg-type]
            message=message,
            timestamp=time.time_ns() // 1_000_000,
            address=self.address,
            final=self._final,
            source="push",
            metadata={"pid": str(os.getpid()), "language": self.identity.language or "python"},
        )

    async def close(self, message: str = "shutting down") -> None:
        """Send the final state (UNHEALTHY, final=True) and stop."""
        if self._task is None:
            return
        self._final = True
        self.set(health_pb2.UNHEALTHY, f"stopped: {message}")
        if self.connected_to:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), FINAL_REPORT_TIMEOUT_S)
        for task in (self._task, self._rule_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = None

    async def _watch_rule(self) -> None:
        while True:
            await asyncio.sleep(RULE_CHECK_INTERVAL_S)
            before = self.rule.degraded
            self.rule.evaluate()
            if before == self.rule.degraded:
                continue
            if not self.rule.degraded and self.state == health_pb2.HEALTHY:
                self.message = self.rule.reason  # HEALTHY again says why: "recovered: ..."
            if self._changed is not None:
                self._changed.set()

    async def _find_health_service(self) -> str:
        if self.health_address:
            return self.health_address
        if not self.broker_address:
            return ""
        return await find_or_wait(self.broker_address, HEALTH_GRPC_SERVICE, HEALTH_WAIT_S)

    async def _run(self) -> None:
        backoff = RECONNECT_INITIAL_S
        while True:
            try:
                address = await self._find_health_service()
            except grpc.aio.AioRpcError as err:
                log.debug("health service lookup failed: %s", err.code().name)
                address = ""
            if address:
                if await self._stream_to(address):
                    return  # the final report was delivered
                backoff = RECONNECT_INITIAL_S if self.connected_to else backoff
            self.connected_to = ""
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX_S)

    async def _stream_to(self, address: str) -> bool:
        """One ReportHealth stream; True when it ended after the final report."""
        async with auth.aio_insecure_channel(address) as channel:
            call = health_pb2_grpc.HealthServiceStub(channel).ReportHealth(self._reports(address))
            try:
                await call
            except grpc.aio.AioRpcError as err:
                log.debug("health report stream to %s broke: %s %s", address, err.code().name, err.details())
                return False
        return self._final

    async def _reports(self, address: str) -> AsyncIterator[health_pb2.HealthStatus]:
        assert self._changed is not None
        self.connects += 1
        self.connected_to = address
        while True:
            self._changed.clear()
            status = self.current()
            self.reports_sent += 1
            yield status  # the current state first: a new health service learns it at once
            if status.final:
                return
            await self._changed.wait()
