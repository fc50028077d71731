"""Pull: probe instances that do not push, with grpc.health.v1 Check and flap damping.

An instance registered in the broker gets ``push_grace_s`` to open its ReportHealth stream; if it
does not (a TypeScript calculator, say), it is probed every ``probe_interval_s`` with a deadline
of ``probe_timeout_s``. One failed probe does not make it UNHEALTHY: ``failures_before_unhealthy``
failures in a row do, and ``successes_before_healthy`` passes in a row bring it back (Consul's
``failures_before_critical`` / ``success_before_passing``). A probe that passes but takes longer
than ``probe_degraded_latency_ms`` counts as slow; that many slow passes in a row -> DEGRADED.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc

from runtime.services.health.settings import HealthSettings
from runtime.services.health.store import DEGRADED, HEALTHY, UNHEALTHY, HealthStore

SOURCE = "probe"
_PASS, _SLOW, _FAIL = "pass", "slow", "fail"


class FlapDamper:
    """Turns a series of probe results into damped state changes (pure; no I/O).

    Example:
        >>> d = FlapDamper(failures_before_unhealthy=2, successes_before_healthy=1, degraded_latency_ms=100)
        >>> d.observe(HEALTHY, ok=False, latency_ms=0, detail="refused") is None
        True
        >>> d.observe(HEALTHY, ok=False, latency_ms=0, detail="refused")[0] == UNHEALTHY
        True
    """

    def __init__(
        self, *, failures_before_unhealthy: int, successes_before_healthy: int, degraded_latency_ms: float
    ):
        self.failures_before_unhealthy = max(1, failures_before_unhealthy)
        self.successes_before_healthy = max(1, successes_before_healthy)
        self.degraded_latency_ms = degraded_latency_ms
        self._verdict = ""
        self.streak = 0

    def reset(self) -> None:
        """Forget the streak (a new process behind the same instance id)."""
        self._verdict = ""
        self.streak = 0

    def observe(self, current: int, *, ok: bool, latency_ms: float, detail: str) -> tuple[int, str] | None:
        """Record one probe; returns (new state, reason) when the streak is long enough to change state."""
        if not ok:
            verdict = _FAIL
        elif latency_ms > self.degraded_latency_ms:
            verdict = _SLOW
        else:
            verdict = _PASS
        self.streak = self.streak + 1 if verdict == self._verdict else 1
        self._verdict = verdict
        if verdict == _FAIL and current != UNHEALTHY and self.streak >= self.failures_before_unhealthy:
            return UNHEALTHY, f"{self.streak} health probe(s) failed in a row; last: {detail}"
        if verdict == _SLOW and current != DEGRADED and self.streak >= self.successes_before_healthy:
            return (
                DEGRADED,
                f"health probe took {latency_ms:.0f} ms, above the {self.degraded_latency_ms:.0f} ms "
                f"threshold ({self.streak} in a row)",
            )
        if verdict == _PASS and current != HEALTHY and self.streak >= self.successes_before_healthy:
            return HEALTHY, f"{self.streak} health probe(s) passed in a row ({latency_ms:.0f} ms)"
        return None


async def probe_once(channel: grpc.aio.Channel, timeout_s: float) -> tuple[bool, float, str]:
    """One grpc.health.v1 Check: (passed, latency in ms, what happened)."""
    stub = grpc_health_pb2_grpc.HealthStub(channel)
    start = time.perf_counter()
    try:
        reply = await stub.Check(grpc_health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
    except grpc.aio.AioRpcError as err:
        latency = (time.perf_counter() - start) * 1000
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return False, latency, f"no answer within {timeout_s * 1000:.0f} ms"
        return False, latency, f"{err.code().name}: {err.details() or 'no details'}"
    latency = (time.perf_counter() - start) * 1000
    if reply.status != grpc_health_pb2.HealthCheckResponse.SERVING:
        name = grpc_health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return False, latency, f"grpc.health.v1 says {name}"
    return True, latency, "SERVING"


@dataclass
class _Target:
    service_name: str
    address: str
    channel: grpc.aio.Channel
    damper: FlapDamper
    task: asyncio.Task[None] | None = None
    kicked: asyncio.Event | None = None
    grace_s: float = 0.0


class Prober:
    """Probes every tracked instance that has no live push stream (one task per instance)."""

    def __init__(self, store: HealthStore, settings: HealthSettings) -> None:
        self.store = store
        self.settings = settings
        self._targets: dict[str, _Target] = {}
        self._ready: dict[str, bool] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.probes_sent = 0

    def track(self, service_name: str, instance_id: str, address: str, *, expect_push: bool = True) -> None:
        """Start probing an instance; a new address restarts its streak.

        ``expect_push``: give it ``push_grace_s`` to open its report stream first (Python services
        embed the agent and push; the others are probed at once).
        """
        target = self._targets.get(instance_id)
        if target is not None and target.address == address:
            return
        self.untrack(instance_id)
        s = self.settings
        target = _Target(
            service_name=service_name,
            address=address,
            channel=grpc.aio.insecure_channel(address),
            damper=FlapDamper(
                failures_before_unhealthy=s.failures_before_unhealthy,
                successes_before_healthy=s.successes_before_healthy,
                degraded_latency_ms=s.probe_degraded_latency_ms,
            ),
            kicked=asyncio.Event(),
            grace_s=s.push_grace_s if expect_push else 0.0,
        )
        if self._ready.pop(instance_id, None) is not None:
            self._count_ready(instance_id, target)
        target.task = asyncio.get_running_loop().create_task(
            self._run(instance_id, target), name=f"probe {instance_id}"
        )
        self._targets[instance_id] = target

    def untrack(self, instance_id: str) -> None:
        """Stop probing an instance (it left the registry)."""
        target = self._targets.pop(instance_id, None)
        if target is None:
            return
        if target.task is not None:
            target.task.cancel()
        closing = asyncio.get_running_loop().create_task(target.channel.close())
        self._closing.add(closing)  # keep a reference until it is done
        closing.add_done_callback(self._closing.discard)

    def kick(self, instance_id: str) -> None:
        """Probe now instead of waiting for the interval (e.g. the supervisor saw it READY)."""
        target = self._targets.get(instance_id)
        if target is not None and target.kicked is not None:
            target.kicked.set()

    def ready(self, instance_id: str) -> None:
        """The supervisor confirmed the instance SERVING: that counts as one passed probe."""
        target = self._targets.get(instance_id)
        if target is None:
            if len(self._ready) >= self.settings.max_instances:
                self._ready.clear()
            self._ready[instance_id] = True  # registered later: counted when it is tracked
            return
        self._count_ready(instance_id, target)
        if not target.grace_s:  # a Python instance keeps its grace to open its report stream
            self.kick(instance_id)

    def _count_ready(self, instance_id: str, target: _Target) -> None:
        inst = self.store.get(instance_id)
        current = inst.state if inst is not None else 0
        # Only the streak matters here; the next real probe makes the change.
        target.damper.observe(current, ok=True, latency_ms=0.0, detail="the supervisor saw it SERVING")
        if target.damper.streak >= target.damper.successes_before_healthy:
            target.damper.streak = target.damper.successes_before_healthy - 1

    def tracked(self) -> list[str]:
        """Instance ids being tracked (probed unless they push)."""
        return sorted(self._targets)

    async def close(self) -> None:
        """Stop every probe task and close their channels."""
        targets = list(self._targets.values())
        self._targets.clear()
        for t in targets:
            if t.task is not None:
                t.task.cancel()
        for t in targets:
            if t.task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await t.task
            await t.channel.close()

    async def _run(self, instance_id: str, target: _Target) -> None:
        s = self.settings
        assert target.kicked is not None
        await self._wait(target.kicked, target.grace_s)
        while True:
            inst = self.store.get(instance_id)
            if inst is None or not inst.pushing:
                ok, latency, detail = await probe_once(target.channel, s.probe_timeout_s)
                self.probes_sent += 1
                inst = self.store.get(instance_id)
                # A push stream may have opened while the probe was in flight: it wins.
                if inst is None or not inst.pushing:
                    current = inst.state if inst is not None else 0
                    change = target.damper.observe(current, ok=ok, latency_ms=latency, detail=detail)
                    if change is not None:
                        state, reason = change
                        self.store.apply(
                            target.service_name,
                            instance_id,
                            state,
                            reason,
                            source=SOURCE,
                            address=target.address,
                        )
            await self._wait(target.kicked, s.probe_interval_s)

    @staticmethod
    async def _wait(kicked: asyncio.Event, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(kicked.wait(), timeout_s)
        kicked.clear()
