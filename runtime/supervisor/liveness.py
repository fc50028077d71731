"""The supervisor's liveness probe: every running child must answer a health check in time.

A frozen child (SIGSTOP, a deadlock) keeps its pid, its sockets and its streams: the exit watch
never fires and the state stays RUNNING. So every RUNNING instance is asked grpc.health.v1 Check
every ``liveness.period_s`` with a ``liveness.timeout_s`` deadline (any answer counts: it proves
the process runs). ``runtime.liveness.LivenessTracker`` turns the outcomes into decisions, which
run on the lifecycle's queue like every other:

* ``failures`` misses in a row: event NOT_RESPONDING "health-1 not responding (3 probes timed
  out)"; ListProcesses shows ``not_responding`` and ``liveness_reason`` until it answers again
  (event RESPONDING "health-1 responding again after 4.0 s").
* not responding for ``restart_after_s`` (off by default): event SIGNALED "liveness: not
  responding for 5.0 s; restarting", then SIGKILL to its process group, as kubelet's
  livenessProbe does. No SIGTERM first: a stopped process cannot run its handler, and one that has
  not answered for seconds will not drain. Its exit then goes through the service's ordinary
  restart policy (delay, backoff, start limit), so a hang that repeats ends FATAL like a crash loop.

Who probes, and why two probers. The supervisor probes here because it owns the processes: the
restart is its decision and must not depend on another lab process being alive, and it is the
one that can notice the health service itself hung (nobody else asks the health service
anything with a deadline). The health service probes every registered instance on its own
(``runtime.services.health.probe``) and turns "not responding" into UNHEALTHY, which takes the
instance out of the broker's lookups; it learns each service's settings from ListProcesses
(``ProcessInfo.liveness``), the one list it already reads. Two probers cost two tiny RPCs per
instance per period; in exchange neither view depends on the other process being responsive.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from runtime.identity import LOOPBACK
from runtime.liveness import LivenessConfig, LivenessTracker
from runtime.supervisor.process import Instance, signal_group
from runtime.v1 import supervisor_pb2 as pb

_MISSES = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)

Emit = Callable[..., None]  # lifecycle._emit(inst, kind, reason, **fields)
Post = Callable[..., None]  # lifecycle.post(handler, *args)
Background = Callable[[Awaitable[Any]], None]


async def probe_answer(stub: health_pb2_grpc.HealthStub, timeout_s: float) -> tuple[bool, bool, str]:
    """One grpc.health.v1 Check: (answered at all, timed out, what happened)."""
    try:
        await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
    except grpc.aio.AioRpcError as err:
        if err.code() in _MISSES:
            timed_out = err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            return False, timed_out, f"{err.code().name}: {err.details() or 'no details'}"
        return True, False, err.code().name  # it answered, if only to say no
    return True, False, "answered"


def rule_text(s: LivenessConfig) -> str:
    """``liveness: every 1s, timeout 0.5s, 3 misses; restart after 5s`` (for the event's rule)."""
    restart = f"restart after {s.restart_after_s:g}s" if s.restart_after_s > 0 else "no restart"
    return f"liveness: every {s.period_s:g}s, timeout {s.timeout_s:g}s, {s.failures} misses; {restart}"


class LivenessKeeper:
    """Starts one probe loop per RUNNING instance and turns its verdicts into events and kills."""

    def __init__(self, *, post: Post, emit: Emit, background: Background) -> None:
        self._post = post
        self._emit = emit
        self._background = background

    def watch(self, inst: Instance) -> None:
        """Probe ``inst`` from now on (it just became RUNNING); stops when it leaves RUNNING."""
        inst.not_responding = ""
        self._background(self._run(inst, inst.generation))

    async def _run(self, inst: Instance, generation: int) -> None:
        settings = inst.spec.liveness
        tracker = LivenessTracker(settings)
        loop = asyncio.get_running_loop()
        try:
            async with grpc.aio.insecure_channel(f"{LOOPBACK}:{inst.port}") as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                while self._current(inst, generation):
                    started = loop.time()
                    answered, timed_out, detail = await probe_answer(stub, settings.timeout_s)
                    if not self._current(inst, generation):
                        return
                    now = time.monotonic()
                    change = tracker.observe(answered=answered, now=now, timed_out=timed_out, detail=detail)
                    if change is not None:
                        since = now - tracker.not_responding_for(now)
                        self._post(self._changed, inst, generation, change.responding, change.reason, since)
                    if tracker.restart_due(now):
                        self._post(self._restart, inst, generation, tracker.not_responding_for(now))
                        return
                    await asyncio.sleep(max(0.0, settings.period_s - (loop.time() - started)))
        finally:
            if inst.generation == generation:
                inst.not_responding = ""

    @staticmethod
    def _current(inst: Instance, generation: int) -> bool:
        return inst.generation == generation and inst.state == pb.PROCESS_STATE_RUNNING

    def _changed(self, inst: Instance, generation: int, responding: bool, reason: str, since: float) -> None:
        if not self._current(inst, generation):
            return
        rule = rule_text(inst.spec.liveness)
        if responding:
            inst.not_responding = ""
            self._emit(inst, pb.PROCESS_EVENT_KIND_RESPONDING, f"{inst.instance_id} {reason}", pid=inst.pid)
        else:
            inst.not_responding = reason
            inst.not_responding_since = since
            self._emit(
                inst,
                pb.PROCESS_EVENT_KIND_NOT_RESPONDING,
                f"{inst.instance_id} {reason}",
                pid=inst.pid,
                rule=rule,
            )

    def _restart(self, inst: Instance, generation: int, down_for_s: float) -> None:
        if not self._current(inst, generation):
            return
        what = "restarting" if inst.spec.restart != "never" else "killing it (restart=never)"
        self._emit(
            inst,
            pb.PROCESS_EVENT_KIND_SIGNALED,
            f"liveness: not responding for {down_for_s:.1f} s; {what}",
            pid=inst.pid,
            signal=int(signal.SIGKILL),
            rule=rule_text(inst.spec.liveness),
        )
        with contextlib.suppress(Exception):
            signal_group(inst.pid, signal.SIGKILL)
