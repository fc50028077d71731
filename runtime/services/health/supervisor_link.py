"""Supervisor events as health: exits, spawns, backoff and FATAL, each with its reason.

``SupervisorFollower`` follows WatchProcessEvents at LAB_SUPERVISOR_ADDR (reconnecting) and maps:

===================  =====================================================================
SPAWNED              STARTING, "spawned pid N"
EXITED               UNHEALTHY with the exit code or signal ("killed by SIGKILL"), always in history
START_FAILED         UNHEALTHY with what the supervisor saw before READY
RESTART_SCHEDULED    stays UNHEALTHY; a history note with the next attempt's time
FATAL                stays UNHEALTHY; a history note "FATAL: ... no more restarts"
WAITING              STARTING, "waiting for broker"
STOPPED              UNHEALTHY, retired (stopped on purpose, left out of the service's state)
READY                no change by itself; counts as one passed probe for a probed instance
NOT_RESPONDING,      the health service probes every instance itself (probe.py); about its own
RESPONDING           instance (it cannot see itself frozen) they become history notes
===================  =====================================================================

SPAWNED and EXITED also end any liveness hold: a new process, or none, is behind the instance.
The listing also carries each service's liveness settings (``ProcessInfo.liveness``, from
lab.yaml): they tell the prober how often and how patiently to probe that service.

On (re)connect it reads ListProcesses once, so instances it has no state for (the health
service itself restarted) are seeded from what the supervisor knows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

import grpc

from runtime.services.health.channel_task import ChannelTask
from runtime.services.health.probe import Prober
from runtime.services.health.settings import HealthSettings
from runtime.services.health.store import STARTING, UNHEALTHY, UNKNOWN, HealthStore
from runtime.v1 import supervisor_pb2, supervisor_pb2_grpc

log = logging.getLogger("runtime.services.health")

SOURCE = "supervisor"
K = supervisor_pb2
P = supervisor_pb2


def clock_text(ms: int) -> str:
    """``12:03:04.250`` (local time) for Unix epoch milliseconds."""
    return time.strftime("%H:%M:%S", time.localtime(ms / 1000)) + f".{ms % 1000:03d}"


def _next_attempt(ev: supervisor_pb2.ProcessEvent) -> str:
    if not ev.next_attempt_at:
        return ""
    wait_s = max(0.0, (ev.next_attempt_at - ev.timestamp) / 1000) if ev.timestamp else 0.0
    return f"next attempt at {clock_text(ev.next_attempt_at)} (in {wait_s:.1f} s)"


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


class SupervisorFollower(ChannelTask):
    """Turns the supervisor's process events into health states."""

    TASK_NAME = "supervisor follower"

    def __init__(
        self,
        supervisor_address: str,
        store: HealthStore,
        prober: Prober,
        settings: HealthSettings,
        self_instance: str = "",
    ) -> None:
        self.self_instance = self_instance  # this health service's own instance id
        self.store = store
        self.prober = prober
        self.settings = settings
        super().__init__(supervisor_address)
        self._stub = supervisor_pb2_grpc.SupervisorServiceStub(self._channel)
        self.connected = asyncio.Event()
        self.events_seen = 0

    async def _run(self) -> None:
        backoff = self.settings.reconnect_initial_s
        while True:
            try:
                call = self._stub.WatchProcessEvents(supervisor_pb2.WatchProcessEventsRequest(replay=0))
                listing = await self._stub.ListProcesses(
                    supervisor_pb2.ListProcessesRequest(), timeout=self.settings.call_timeout_s
                )
                self.seed(listing.processes)
                self.connected.set()
                backoff = self.settings.reconnect_initial_s
                async for event in call:
                    self.handle(event)
            except grpc.aio.AioRpcError as err:
                log.debug("supervisor watch broke: %s", err.code().name)
            self.connected.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.settings.reconnect_max_s)

    def seed(self, processes: Iterable[supervisor_pb2.ProcessInfo]) -> None:
        """Give instances without a state the one the supervisor's listing implies."""
        for p in processes:
            if p.HasField("liveness"):
                self.prober.configure(p.service, p.liveness)
            record = self.store.get(p.instance_id)
            if record is not None and record.state != UNKNOWN:
                continue
            if p.state in (P.PROCESS_STATE_STARTING, P.PROCESS_STATE_WAITING):
                self.store.apply(
                    p.service,
                    p.instance_id,
                    STARTING,
                    "starting (seen in the supervisor's list)",
                    source=SOURCE,
                )
            elif p.state == P.PROCESS_STATE_BACKOFF:
                nxt = f"next attempt at {clock_text(p.next_start_at)}" if p.next_start_at else ""
                self.store.apply(
                    p.service, p.instance_id, UNHEALTHY, _join(p.last_exit_reason, nxt), source=SOURCE
                )
            elif p.state == P.PROCESS_STATE_FATAL:
                self.store.apply(
                    p.service, p.instance_id, UNHEALTHY, _join("FATAL", p.last_exit_reason), source=SOURCE
                )
            elif p.state in (P.PROCESS_STATE_STOPPED, P.PROCESS_STATE_EXITED, P.PROCESS_STATE_SKIPPED):
                self.store.apply(
                    p.service,
                    p.instance_id,
                    UNHEALTHY,
                    _join("not running", p.last_exit_reason),
                    source=SOURCE,
                    retired=True,
                )

    def handle(self, ev: supervisor_pb2.ProcessEvent) -> None:
        """Apply one ProcessEvent (public so tests can feed scripted events)."""
        self.events_seen += 1
        if not ev.instance_id:
            return
        kind = ev.kind
        svc, iid = ev.service, ev.instance_id
        if kind in (K.PROCESS_EVENT_KIND_SPAWNED, K.PROCESS_EVENT_KIND_EXITED):
            self.prober.restarted(iid)
        if kind == K.PROCESS_EVENT_KIND_SPAWNED:
            self.store.apply(svc, iid, STARTING, ev.reason or f"spawned pid {ev.pid}", source=SOURCE)
        elif kind == K.PROCESS_EVENT_KIND_WAITING:
            self.store.apply(svc, iid, STARTING, ev.reason or "waiting for its dependencies", source=SOURCE)
        elif kind in (K.PROCESS_EVENT_KIND_EXITED, K.PROCESS_EVENT_KIND_START_FAILED):
            # Often the instance's report stream was seen breaking a moment earlier: the exit
            # still goes into the history (note) because it says why.
            self.store.apply(
                svc, iid, UNHEALTHY, _join(self._exit_text(ev), ev.rule), source=SOURCE, note=True
            )
        elif kind == K.PROCESS_EVENT_KIND_RESTART_SCHEDULED:
            reason = _join(
                f"restart scheduled ({ev.reason})" if ev.reason else "restart scheduled",
                _next_attempt(ev),
                ev.rule,
            )
            self.store.apply(svc, iid, UNHEALTHY, reason, source=SOURCE, note=True)
        elif kind == K.PROCESS_EVENT_KIND_FATAL:
            reason = _join(
                f"FATAL: {ev.reason or 'gave up'}", ev.rule, "no more restarts; fix it and start it again"
            )
            self.store.apply(svc, iid, UNHEALTHY, reason, source=SOURCE, note=True)
        elif kind == K.PROCESS_EVENT_KIND_STOPPED:
            self.store.apply(svc, iid, UNHEALTHY, _join("stopped", ev.reason), source=SOURCE, retired=True)
        elif kind == K.PROCESS_EVENT_KIND_READY:
            self.prober.ready(iid)
        elif kind in (K.PROCESS_EVENT_KIND_NOT_RESPONDING, K.PROCESS_EVENT_KIND_RESPONDING):
            if iid == self.self_instance:
                self._note_about_self(ev)

    def _note_about_self(self, ev: supervisor_pb2.ProcessEvent) -> None:
        # Arrives once this process runs again (the event waited in the stream): a history note
        # that keeps the current state and message.
        record = self.store.get(ev.instance_id)
        if record is None:
            return
        state, message = record.state, record.message
        reason = f"the supervisor saw {ev.reason} at {clock_text(ev.timestamp)}"
        self.store.apply(ev.service, ev.instance_id, state, reason, source=SOURCE, note=True)
        record.message = message

    @staticmethod
    def _exit_text(ev: supervisor_pb2.ProcessEvent) -> str:
        pid = f" (pid {ev.pid})" if ev.pid else ""
        if ev.reason:
            return f"process exited: {ev.reason}{pid}"
        if ev.signal:
            return f"process killed by signal {ev.signal}{pid}"
        return f"process exited with code {ev.exit_code}{pid}"
