"""The chaos service: inject faults into processes the lab started, list them, clear them.

    python -m runtime.services.chaos

* CRASH goes through the supervisor (SignalProcess SIGKILL for the target instance, or every
  instance of the service); the supervisor restarts it by its policy. This service never kills
  anything itself, and the supervisor only signals processes the lab started.
* Every other fault is kept here and streamed (``WatchFaults``) to the target's agent, which
  applies it (``runtime.agent.faults``). Faults expire after ``duration_seconds`` (0: until
  cleared); when this service dies, the agents drop every fault (dead-man switch).
* Targets are checked against the supervisor's process list: an unknown service is NOT_FOUND
  (with the known ones listed); a target whose language has no fault agent accepts only CRASH
  (the Python agent, runtime.agent.faults, and the TypeScript one, calculator/node/src/agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator

import grpc

from runtime.client import auth
from runtime.errors import quote
from runtime.identity import CHAOS_GRPC_SERVICE, ENV_SUPERVISOR_ADDR, Identity
from runtime.services.chaos.rules import MAX_ACTIVE_FAULTS, config_problem, describe
from runtime.v1 import chaos_pb2, chaos_pb2_grpc, common_pb2, supervisor_pb2, supervisor_pb2_grpc

log = logging.getLogger("runtime.services.chaos")

SUPERVISOR_TIMEOUT_S = 3.0
RUNNING = supervisor_pb2.PROCESS_STATE_RUNNING
FAULT_LANGUAGES = ("python", "typescript", "")  # languages whose servers embed the fault agent


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _created_at(fault: chaos_pb2.ActiveFault) -> int:
    return fault.created_at


class ChaosServicer(chaos_pb2_grpc.ChaosServiceServicer):
    """Keeps the active faults, streams them to agents, crashes through the supervisor.

    Args:
        identity: this chaos instance (its own service is never crashed by itself).
        supervisor: a SupervisorService stub (grpc.aio); None outside a lab (CRASH and target
            checks then answer FAILED_PRECONDITION).
    """

    def __init__(
        self, identity: Identity, supervisor: supervisor_pb2_grpc.SupervisorServiceStub | None
    ) -> None:
        self.identity = identity
        self.supervisor = supervisor
        self.faults: dict[str, chaos_pb2.ActiveFault] = {}
        self._changed = asyncio.Condition()
        self._version = 0
        self._expiry: asyncio.Task[None] | None = None

    # -- the list and its watchers -------------------------------------------------------

    async def _bump(self) -> None:
        async with self._changed:
            self._version += 1
            self._changed.notify_all()

    def start(self) -> None:
        """Start the expiry task (needs the running loop)."""
        self._expiry = asyncio.get_running_loop().create_task(self._expire_loop(), name="chaos expiry")

    async def close(self) -> None:
        """Stop the expiry task."""
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry

    async def _expire_loop(self) -> None:
        while True:
            now = _now_ms()
            gone = [i for i, f in self.faults.items() if f.expires_at and f.expires_at <= now]
            for fault_id in gone:
                fault = self.faults.pop(fault_id)
                log.info("fault %s expired: %s", fault_id, describe(fault.config))
            if gone:
                await self._bump()
            pending = [f.expires_at for f in self.faults.values() if f.expires_at]
            wait_s = (min(pending) - _now_ms()) / 1000 if pending else 1.0
            # Woken early by a new fault via the condition; capped so a new short TTL is seen.
            with contextlib.suppress(asyncio.TimeoutError):
                async with self._changed:
                    await asyncio.wait_for(self._changed.wait(), max(0.01, min(wait_s, 1.0)))

    def _for(self, service: str, instance: str) -> chaos_pb2.FaultList:
        return chaos_pb2.FaultList(
            faults=[
                f
                for f in self.faults.values()
                if f.config.target_service == service
                and (not f.config.target_instance or f.config.target_instance == instance)
            ]
        )

    async def WatchFaults(
        self, request: chaos_pb2.WatchFaultsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[chaos_pb2.FaultList]:
        if not request.service_name:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "service_name is empty: name the service to watch"
            )
        last: chaos_pb2.FaultList | None = None
        while True:
            async with self._changed:
                version = self._version
            current = self._for(request.service_name, request.instance_id)
            if current != last:
                yield current  # the first message is the current list, even when empty
                last = current
            async with self._changed:
                while self._version == version:
                    await self._changed.wait()

    # -- the API ---------------------------------------------------------------------------

    async def _processes(
        self, context: grpc.aio.ServicerContext, service: str
    ) -> list[supervisor_pb2.ProcessInfo]:
        """The lab's processes of ``service``; aborts NOT_FOUND (listing the known ones)."""
        if self.supervisor is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"this chaos service runs outside a lab (no {ENV_SUPERVISOR_ADDR}): it can only target lab services",
            )
        assert self.supervisor is not None
        reply = await self.supervisor.ListProcesses(
            supervisor_pb2.ListProcessesRequest(), timeout=SUPERVISOR_TIMEOUT_S
        )
        mine = [p for p in reply.processes if p.service == service]
        if not mine:
            known = ", ".join(sorted({p.service for p in reply.processes}))
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"no lab service named {quote(service)}; the lab runs: {known}"
            )
        return mine

    async def InjectFault(
        self, request: chaos_pb2.FaultConfig, context: grpc.aio.ServicerContext
    ) -> chaos_pb2.FaultStatus:
        problem = config_problem(request)
        if problem:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        procs = await self._processes(context, request.target_service)
        if request.target_instance:
            procs = [p for p in procs if p.instance_id == request.target_instance]
            if not procs:
                await context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"{request.target_service} has no instance {quote(request.target_instance)}",
                )
        fault_id = f"fault-{secrets.token_hex(3)}"
        if request.type == chaos_pb2.CRASH:
            return await self._crash(context, fault_id, request, procs)
        foreign = sorted({p.language for p in procs if p.language not in FAULT_LANGUAGES})
        if foreign:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"{request.target_service} runs {', '.join(foreign)}: only Python and TypeScript services "
                "embed the fault agent, so only CRASH (done by the supervisor) works on it",
            )
        if len(self.faults) >= MAX_ACTIVE_FAULTS:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{len(self.faults)} faults are active, the cap is {MAX_ACTIVE_FAULTS}: clear some first",
            )
        now = _now_ms()
        config = chaos_pb2.FaultConfig()
        config.CopyFrom(request)
        fault = chaos_pb2.ActiveFault(
            fault_id=fault_id,
            config=config,
            created_at=now,
            expires_at=now + request.duration_seconds * 1000 if request.duration_seconds else 0,
        )
        self.faults[fault_id] = fault
        await self._bump()
        text = describe(request)
        log.warning("fault %s injected: %s", fault_id, text)
        return chaos_pb2.FaultStatus(fault_id=fault_id, active=True, message=text)

    async def _crash(
        self,
        context: grpc.aio.ServicerContext,
        fault_id: str,
        request: chaos_pb2.FaultConfig,
        procs: list[supervisor_pb2.ProcessInfo],
    ) -> chaos_pb2.FaultStatus:
        if request.target_service == self.identity.service_name:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "the chaos service does not crash itself: use lab.kill('chaos') for that",
            )
        live = [p for p in procs if p.state == RUNNING and p.pid]
        if not live:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"no running instance of {request.target_service} to crash; see lab.status()",
            )
        assert self.supervisor is not None
        killed = []
        for p in live:
            req = supervisor_pb2.SignalProcessRequest(
                service=p.service, instance_id=p.instance_id, signal="SIGKILL"
            )
            try:
                reply = await self.supervisor.SignalProcess(req, timeout=SUPERVISOR_TIMEOUT_S)
            except grpc.aio.AioRpcError as err:
                await context.abort(
                    err.code(), f"the supervisor refused to crash {p.instance_id}: {err.details()}"
                )
            killed.append(f"{reply.instance_id} (pid {reply.pid})")
        text = f"SIGKILL sent by the supervisor to {', '.join(killed)}; it restarts them by their policy"
        log.warning("fault %s: %s", fault_id, text)
        return chaos_pb2.FaultStatus(fault_id=fault_id, active=False, message=text)

    async def ListActiveFaults(
        self, request: common_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> chaos_pb2.FaultList:
        faults: list[chaos_pb2.ActiveFault] = sorted(self.faults.values(), key=_created_at)
        return chaos_pb2.FaultList(faults=faults)

    async def ClearFault(
        self, request: chaos_pb2.FaultId, context: grpc.aio.ServicerContext
    ) -> chaos_pb2.ClearFaultResponse:
        fault = self.faults.pop(request.fault_id, None)
        if fault is None:
            return chaos_pb2.ClearFaultResponse(
                cleared=False,
                message=f"no active fault {quote(request.fault_id)} (it may have expired already)",
            )
        await self._bump()
        log.info("fault %s cleared: %s", request.fault_id, describe(fault.config))
        return chaos_pb2.ClearFaultResponse(cleared=True, message=f"cleared: {describe(fault.config)}")

    async def ClearAllFaults(
        self, request: common_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> chaos_pb2.ClearAllFaultsResponse:
        n = len(self.faults)
        self.faults.clear()
        await self._bump()
        if n:
            log.info("cleared all %d faults", n)
        return chaos_pb2.ClearAllFaultsResponse(cleared=n)


async def main() -> None:
    """Serve the chaos service through the agent until SIGTERM."""
    from runtime.agent import Agent

    agent = Agent([CHAOS_GRPC_SERVICE], default_service="chaos")
    address = agent.identity.supervisor_address
    channel = auth.aio_insecure_channel(address) if address else None
    stub = supervisor_pb2_grpc.SupervisorServiceStub(channel) if channel is not None else None
    servicer = ChaosServicer(agent.identity, stub)
    chaos_pb2_grpc.add_ChaosServiceServicer_to_server(servicer, agent.server)
    agent.http.serve(servicer, CHAOS_GRPC_SERVICE)  # and over Connect
    servicer.start()
    try:
        await agent.start()
        await agent.wait_for_stop()
    finally:
        await servicer.close()
        await agent.stop()
        if channel is not None:
            await channel.close()
