"""Pull: probe every registered instance with grpc.health.v1 Check, for liveness and, when it
does not push, for its state (with flap damping).

Every instance registered in the broker is probed every ``period_s`` with a ``timeout_s``
deadline, whether it pushes or not: a frozen process keeps its report stream open and says
nothing, so only a question with a deadline tells (``runtime.liveness``). ``failures`` probes in
a row without an answer (DEADLINE_EXCEEDED, UNAVAILABLE) make it UNHEALTHY, "not responding (3
probes timed out)", source ``liveness``, which takes it out of the broker's lookups. While it is
held so, pushed reports are kept aside; ``successes_before_healthy`` answers in a row end the hold
and restore the last pushed state (or, for a probed instance, what the probe says).

The settings per service come from the supervisor's ListProcesses (``ProcessInfo.liveness``,
i.e. lab.yaml ``services.<name>.liveness``; see ``configure``); services the supervisor does not
describe use ``probe_interval_s``, ``probe_timeout_s`` and ``failures_before_unhealthy``.

An instance that does not push (a TypeScript calculator, say; a Python one gets ``push_grace_s``
to open its stream) is also judged by the answers: one NOT_SERVING does not make it UNHEALTHY:
``failures_before_unhealthy`` in a row do, and ``successes_before_healthy`` passes in a row bring
it back (Consul's ``failures_before_critical`` / ``success_before_passing``). A probe that passes
but takes longer than ``probe_degraded_latency_ms`` counts as slow; that many in a row -> DEGRADED.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc

from runtime.liveness import LivenessConfig, LivenessSettings, LivenessTracker
from runtime.services.health.settings import HealthSettings
from runtime.services.health.store import DEGRADED, HEALTHY, UNHEALTHY, HealthStore, InstanceHealth

SOURCE = "probe"
SOURCE_LIVENESS = "liveness"
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


@dataclass(frozen=True)
class ProbeResult:
    """One probe: passed (SERVING), latency, what happened, and whether it got no answer at all."""

    ok: bool
    latency_ms: float
    detail: str
    missed: bool = False  # DEADLINE_EXCEEDED or UNAVAILABLE: no proof the process runs
    timed_out: bool = False


async def probe_once(channel: grpc.aio.Channel, timeout_s: float) -> ProbeResult:
    """One grpc.health.v1 Check against ``channel`` with a ``timeout_s`` deadline."""
    stub = grpc_health_pb2_grpc.HealthStub(channel)
    start = time.perf_counter()
    try:
        reply = await stub.Check(grpc_health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
    except grpc.aio.AioRpcError as err:
        latency = (time.perf_counter() - start) * 1000
        if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return ProbeResult(False, latency, f"no answer within {timeout_s * 1000:.0f} ms", True, True)
        detail = f"{err.code().name}: {err.details() or 'no details'}"
        return ProbeResult(False, latency, detail, missed=err.code() == grpc.StatusCode.UNAVAILABLE)
    latency = (time.perf_counter() - start) * 1000
    if reply.status != grpc_health_pb2.HealthCheckResponse.SERVING:
        name = grpc_health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return ProbeResult(False, latency, f"grpc.health.v1 says {name}")
    return ProbeResult(True, latency, "SERVING")


@dataclass
class _Target:
    service_name: str
    address: str
    channel: grpc.aio.Channel
    damper: FlapDamper
    liveness: LivenessTracker
    task: asyncio.Task[None] | None = None
    kicked: asyncio.Event | None = None
    grace_s: float = 0.0
    grace_until: float = 0.0  # monotonic; until then its answers do not set its state


class Prober:
    """Probes every tracked instance (one task per instance): liveness for all, state for non-pushers."""

    def __init__(self, store: HealthStore, settings: HealthSettings) -> None:
        self.store = store
        self.settings = settings
        self.default_liveness = LivenessSettings(
            period_s=settings.probe_interval_s,
            timeout_s=settings.probe_timeout_s,
            failures=settings.failures_before_unhealthy,
        )
        self._liveness: dict[str, LivenessSettings] = {}
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
            liveness=LivenessTracker(self.liveness_for(service_name), recoveries=s.successes_before_healthy),
            kicked=asyncio.Event(),
            grace_s=s.push_grace_s if expect_push else 0.0,
        )
        if self._ready.pop(instance_id, None) is not None:
            self._count_ready(instance_id, target)
        target.task = asyncio.get_running_loop().create_task(
            self._run(instance_id, target), name=f"probe {instance_id}"
        )
        self._targets[instance_id] = target

    def configure(self, service_name: str, settings: LivenessConfig) -> None:
        """Probe ``service_name`` with these liveness settings (from the supervisor's list)."""
        if len(self._liveness) >= self.settings.max_instances and service_name not in self._liveness:
            return  # bounded; the defaults apply
        self._liveness[service_name] = LivenessSettings(
            period_s=settings.period_s or self.default_liveness.period_s,
            timeout_s=settings.timeout_s or self.default_liveness.timeout_s,
            failures=settings.failures or self.default_liveness.failures,
            restart_after_s=settings.restart_after_s,
        )

    def liveness_for(self, service_name: str) -> LivenessSettings:
        """The liveness settings used for ``service_name`` (the defaults until configured)."""
        return self._liveness.get(service_name, self.default_liveness)

    def restarted(self, instance_id: str) -> None:
        """A new process runs behind ``instance_id``: forget its streaks and any liveness hold."""
        target = self._targets.get(instance_id)
        if target is not None:
            target.damper.reset()
            target.liveness.reset()
        record = self.store.get(instance_id)
        if record is not None:
            record.unresponsive = False
            record.held = None

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
        assert target.kicked is not None
        # Liveness is probed at once; only judging its state waits out the push grace.
        target.grace_until = time.monotonic() + target.grace_s
        while True:
            live = self.liveness_for(target.service_name)
            target.liveness.settings = live
            started = time.monotonic()
            result = await probe_once(target.channel, live.timeout_s)
            self.probes_sent += 1
            # Read the record after the probe: a push stream may have opened meanwhile.
            self._judge(instance_id, target, self.store.get(instance_id), result)
            # One probe per period, start to start (a miss must not stretch the period).
            await self._wait(target.kicked, max(0.0, live.period_s - (time.monotonic() - started)))

    def _judge(self, instance_id: str, target: _Target, inst: InstanceHealth | None, r: ProbeResult) -> None:
        change = target.liveness.observe(
            answered=not r.missed, now=time.monotonic(), timed_out=r.timed_out, detail=r.detail
        )
        current = inst.state if inst is not None else 0
        pushing = (inst is not None and inst.pushing) or time.monotonic() < target.grace_until
        if change is not None and not change.responding and (inst is None or not inst.unresponsive):
            # Keep what it said last, to restore once it answers again.
            held = (inst.state, inst.message) if inst is not None and inst.state else None
            target.damper.reset()
            self._apply(target, instance_id, UNHEALTHY, change.reason, SOURCE_LIVENESS)
            record = self.store.get(instance_id)
            if record is not None:
                record.unresponsive, record.held = True, held
            return
        if inst is not None and inst.unresponsive:
            if r.missed or target.liveness.answers < target.liveness.recoveries:
                return
            answered = f"responding again ({target.liveness.answers} probes answered)"
            inst.unresponsive = False
            held, inst.held = inst.held, None
            if pushing and held is not None:
                self._apply(
                    target, instance_id, held[0], f"{answered}; last report: {held[1]}", SOURCE_LIVENESS
                )
                return
            state = HEALTHY if r.ok else UNHEALTHY
            if r.ok and r.latency_ms > target.damper.degraded_latency_ms:
                state = DEGRADED
            self._apply(
                target, instance_id, state, f"{answered}; {r.detail} in {r.latency_ms:.0f} ms", SOURCE
            )
            return
        if r.missed or pushing:
            return  # misses are liveness's to judge; a pushing instance speaks for its own state
        change_state = target.damper.observe(current, ok=r.ok, latency_ms=r.latency_ms, detail=r.detail)
        if change_state is not None:
            self._apply(target, instance_id, change_state[0], change_state[1], SOURCE)

    def _apply(self, target: _Target, instance_id: str, state: int, reason: str, source: str) -> None:
        self.store.apply(
            target.service_name, instance_id, state, reason, source=source, address=target.address
        )

    @staticmethod
    async def _wait(kicked: asyncio.Event, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(kicked.wait(), timeout_s)
        kicked.clear()
