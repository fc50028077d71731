"""SupervisorService (proto/runtime/v1/supervisor.proto): gRPC in front of the manager.

Bad input gets the right status and a message a learner can act on: unknown names NOT_FOUND (with
the known names), out-of-range scale or an unset or unknown signal INVALID_ARGUMENT, a pid the lab did not
start PERMISSION_DENIED, a job whose toolchain is missing FAILED_PRECONDITION, a RunJob
environment key outside the allowlist INVALID_ARGUMENT. A call without the lab's token never gets
here: the daemon's server refuses it with UNAUTHENTICATED (runtime/client/auth.py).

Beside SupervisorService the daemon serves grpc.health.v1 and server reflection, like every lab
service, so grpc_health_probe and grpcurl work against it too (``serve_health_and_reflection``).
Caller input is quoted in messages at most ``runtime.errors.QUOTE_LIMIT`` characters long.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from runtime.errors import ServiceNotFound, length_problem, quote
from runtime.supervisor.jobs import DEFAULT_TIMEOUT_S, JobEnvRefused, JobUnavailable, check_job_env
from runtime.supervisor.leases import UnknownLease
from runtime.supervisor.output import DEFAULT_TAIL
from runtime.supervisor.process import Instance
from runtime.v1 import supervisor_pb2 as pb
from runtime.v1 import supervisor_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from runtime.supervisor.daemon import Daemon


def parse_signal(name: str) -> signal.Signals:
    """'SIGKILL', 'KILL', 'kill' or '9' -> signal.SIGKILL; ValueError names what is accepted.

    An empty name is an error, not SIGTERM: a caller that forgot the field must not stop a process.
    """
    if not name.strip():
        raise ValueError("signal is not set; name one, like SIGTERM, KILL or a number like 9")
    text = name.strip().upper()
    if not text.isdigit() and not text.startswith("SIG"):
        text = "SIG" + text
    try:
        return signal.Signals(int(text)) if text.isdigit() else signal.Signals[text]
    except (KeyError, ValueError):
        raise ValueError(
            f"unknown signal {quote(name)}; use a name like SIGTERM, KILL or a number like 9"
        ) from None


def serve_health_and_reflection(server: grpc.aio.Server) -> grpc_health.aio.HealthServicer:
    """Add grpc.health.v1 (SERVING) and server reflection to the daemon's server.

    Returns the health servicer; ``enter_graceful_shutdown()`` turns it NOT_SERVING.
    """
    health = grpc_health.aio.HealthServicer()
    grpc_health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        [
            pb.DESCRIPTOR.services_by_name["SupervisorService"].full_name,
            grpc_health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    return health


class SupervisorServicer(pb_grpc.SupervisorServiceServicer):
    """The daemon's gRPC face; every state change goes through ``daemon.manager``."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.manager = daemon.manager

    async def _select(
        self, context: grpc.aio.ServicerContext, service: str, instance_id: str
    ) -> list[Instance]:
        if not service and not instance_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "give a service name or an instance_id")
        try:
            return self.manager.select(service, instance_id)
        except ServiceNotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            raise  # unreachable: abort raises

    async def GetLabInfo(self, request: pb.GetLabInfoRequest, context: Any) -> pb.GetLabInfoResponse:
        d = self.daemon
        return pb.GetLabInfoResponse(
            lab_dir=d.lab_dir,
            config_path=d.config.path,
            pid=d.pid,
            address=d.address,
            broker_address=self.manager.broker_address,
            started_at=d.started_at_ms,
            leases=d.leases.expire(time.monotonic()),
            linger_s=d.leases.linger_s,
            shutting_down=d.shutting_down,
            project_root=d.config.project_root,
            connect_address=d.connect_address,
        )

    async def ListProcesses(self, request: pb.ListProcessesRequest, context: Any) -> pb.ListProcessesResponse:
        insts = await self._select(context, request.service, "") if request.service else self.manager.select()
        return pb.ListProcessesResponse(processes=self.manager.info(insts))

    async def StartProcess(self, request: pb.StartProcessRequest, context: Any) -> pb.StartProcessResponse:
        insts = await self._select(context, request.service, request.instance_id)
        if self.daemon.shutting_down:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "the lab is shutting down; start a new one"
            )
        await self.manager.call(self.manager.start, insts)
        return pb.StartProcessResponse(processes=self.manager.info(insts))

    async def StopProcess(self, request: pb.StopProcessRequest, context: Any) -> pb.StopProcessResponse:
        insts = await self._select(context, request.service, request.instance_id)
        await asyncio.gather(*await self.manager.call(self.manager.stop, insts))
        return pb.StopProcessResponse(processes=self.manager.info(insts))

    async def RestartProcess(
        self, request: pb.RestartProcessRequest, context: Any
    ) -> pb.RestartProcessResponse:
        insts = await self._select(context, request.service, request.instance_id)
        await asyncio.gather(*await self.manager.call(self.manager.restart, insts))
        return pb.RestartProcessResponse(processes=self.manager.info(insts))

    async def ScaleService(self, request: pb.ScaleServiceRequest, context: Any) -> pb.ScaleServiceResponse:
        await self._select(context, request.service, "")
        spec = self.manager.spec(request.service)
        if not 0 <= request.instances <= spec.max_instances:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{request.service}: {request.instances} instances is out of range; use 0..{spec.max_instances} "
                f"(raise services.{request.service}.max_instances in lab.yaml for more)",
            )
        await asyncio.gather(*await self.manager.call(self.manager.scale, request.service, request.instances))
        return pb.ScaleServiceResponse(processes=self.manager.info(self.manager.select(request.service)))

    async def SignalProcess(self, request: pb.SignalProcessRequest, context: Any) -> pb.SignalProcessResponse:
        try:
            sig = parse_signal(request.signal)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if request.pid:
            inst = self.manager.find_pid(request.pid)
            if inst is None:
                if request.pid in self.daemon.jobs.running_pids:
                    os.kill(request.pid, sig)
                    return pb.SignalProcessResponse(pid=request.pid, signal=sig.name)
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"pid {request.pid} was not started by this lab; only lab processes can be signalled "
                    "(see ListProcesses for their pids)",
                )
        else:
            insts = await self._select(context, request.service, request.instance_id)
            live = [i for i in insts if i.alive and i.pid]
            if not live:
                names = ", ".join(i.instance_id for i in insts)
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"{names}: no running process to signal; start it first",
                )
            inst = live[0]
        assert inst is not None
        try:
            pid = await self.manager.call(self.manager.signal, inst, sig)
        except ProcessLookupError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return pb.SignalProcessResponse(pid=pid, instance_id=inst.instance_id, signal=sig.name)

    async def WatchProcessEvents(
        self, request: pb.WatchProcessEventsRequest, context: Any
    ) -> AsyncIterator[pb.ProcessEvent]:
        if request.service:
            await self._select(context, request.service, "")
        events = self.manager.events
        sub = events.subscribe(request.service)  # before the replay, so nothing falls in between
        try:
            last = 0
            for past in events.recent(request.replay, request.service):
                last = past.seq
                yield past
            while (live := await sub.get()) is not None:
                if live.seq > last:
                    yield live
        except asyncio.CancelledError:
            # The watcher went away or the daemon is exiting: an ordinary end of this stream,
            # not an error worth grpc's "Exception not handled" traceback in the daemon log.
            return
        finally:
            sub.close()

    async def ListProcessEvents(
        self, request: pb.ListProcessEventsRequest, context: Any
    ) -> pb.ListProcessEventsResponse:
        if request.service:
            await self._select(context, request.service, "")
        if request.after_seq < 0 or request.limit < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "after_seq and limit must be >= 0")
        events = self.manager.events.after(request.after_seq, request.limit, request.service)
        return pb.ListProcessEventsResponse(events=events)

    async def GetProcessOutput(
        self, request: pb.GetProcessOutputRequest, context: Any
    ) -> pb.GetProcessOutputResponse:
        insts = await self._select(context, "", request.instance_id)
        return pb.GetProcessOutputResponse(lines=insts[0].output.tail(request.lines or DEFAULT_TAIL))

    async def RunJob(self, request: pb.RunJobRequest, context: Any) -> pb.RunJobResponse:
        timeout_s = request.timeout_ms / 1000 if request.timeout_ms > 0 else DEFAULT_TIMEOUT_S
        env = dict(request.env)
        try:
            check_job_env(request.job, env)  # before anything else: a refused key is the caller's error
            result = await self.daemon.jobs.run(request.job, list(request.args), env, timeout_s)
        except JobEnvRefused as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except ServiceNotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except JobUnavailable as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return pb.RunJobResponse(
            exit_code=result.exit_code,
            stdout=result.stdout,
            stderr=result.stderr,
            elapsed_ms=result.elapsed_ms,
            pid=result.pid,
            instance_id=result.instance_id,
        )

    async def AcquireLease(self, request: pb.AcquireLeaseRequest, context: Any) -> pb.AcquireLeaseResponse:
        if request.ttl_ms < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "ttl_ms must be >= 0 (0 means 10000)")
        too_long = length_problem("holder", request.holder)
        if too_long:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, too_long)
        if self.daemon.shutting_down:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "the lab is shutting down; wait and start a new one"
            )
        lease = self.daemon.leases.acquire(
            request.holder or context.peer(), request.ttl_ms / 1000, time.monotonic()
        )
        self.daemon.lease_event(f"lease acquired by {lease.holder} (ttl {lease.ttl_s:g}s)")
        return pb.AcquireLeaseResponse(lease_id=lease.lease_id, ttl_ms=int(lease.ttl_s * 1000))

    async def RenewLease(self, request: pb.RenewLeaseRequest, context: Any) -> pb.RenewLeaseResponse:
        now = time.monotonic()
        try:
            lease = self.daemon.leases.renew(request.lease_id, now)
        except UnknownLease as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        expires_ms = time.time_ns() // 1_000_000 + int((lease.expires_at - now) * 1000)
        return pb.RenewLeaseResponse(expires_at=expires_ms)

    async def ReleaseLease(self, request: pb.ReleaseLeaseRequest, context: Any) -> pb.ReleaseLeaseResponse:
        remaining = self.daemon.leases.release(request.lease_id, time.monotonic())
        self.daemon.lease_event(f"lease released; {remaining} remaining")
        return pb.ReleaseLeaseResponse(remaining=remaining)

    async def Shutdown(self, request: pb.ShutdownRequest, context: Any) -> pb.ShutdownResponse:
        self.daemon.request_shutdown(request.reason or "Shutdown requested")
        return pb.ShutdownResponse()
