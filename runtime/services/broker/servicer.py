"""The broker service: the lab's registry and discovery (`python -m runtime.services.broker`).

Services register an instance under a lease and keep it alive over a KeepAlive stream; clients
look instances up and follow changes with WatchServices. The bookkeeping lives in
runtime/services/broker/registry.py; this module maps it onto gRPC (statuses, streams, subscribers).

A watcher gets a bounded queue: one that falls more than WATCH_QUEUE_LIMIT events behind is ended
with RESOURCE_EXHAUSTED and told the revision to resume from, so it never misses an event silently.
Lookups hide UNHEALTHY instances; watches show every instance with its health (an UNHEALTHY one
arrives as an UPDATED event), so a watcher decides itself what to do with it.
The broker serves itself through the agent and lists itself in its own registry.

The registry behind it is a RegistryBackend (runtime/services/broker/backend.py): in this process
by default, etcd with ``store: etcd`` (runtime/services/broker/etcd_registry.py, which says why the
broker and not each agent keeps the etcd lease); statuses and messages are the same on both.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator

import grpc

from runtime.agent import Agent
from runtime.agent.store_status import StoreStatusInterceptor
from runtime.client.store_choice import store_from_env
from runtime.errors import length_problem, quote
from runtime.identity import BROKER_GRPC_SERVICE, Identity
from runtime.services.broker.backend import RegistryBackend, WatchOverflow, as_backend, make_backend
from runtime.services.broker.registry import Registry, RegistryFull, RevisionNotKept, UnknownLease
from runtime.v1 import broker_pb2, broker_pb2_grpc, health_pb2

log = logging.getLogger("runtime.services.broker")

WATCH_QUEUE_LIMIT = 1000
EXPIRY_TICK_S = 0.05
STREAM_LOST_GRACE_S = 0.05


class BrokerServicer(broker_pb2_grpc.BrokerServiceServicer):
    """gRPC face of a RegistryBackend (a plain Registry is served as the local store).

    Example:
        >>> servicer = BrokerServicer(Registry())
        >>> # broker_pb2_grpc.add_BrokerServiceServicer_to_server(servicer, server)
    """

    def __init__(
        self, registry: Registry | RegistryBackend, *, watch_queue_limit: int = WATCH_QUEUE_LIMIT
    ) -> None:
        self.registry = as_backend(registry)
        self.watch_queue_limit = watch_queue_limit
        self._drops: set[asyncio.Task[bool]] = set()

    def close(self) -> None:
        """End every watch stream (cleanly: watchers resume elsewhere or later)."""
        self.registry.close_watches()

    async def expire_leases(self) -> None:
        """Remove instances whose lease ran out, forever (run as a task)."""
        while True:
            await self.registry.expire()
            await asyncio.sleep(EXPIRY_TICK_S)

    def _drop_later(self, lease_id: str) -> None:
        task = asyncio.ensure_future(self.registry.drop_lease(lease_id, "keepalive stream lost"))
        self._drops.add(task)  # held until done: a task nobody references may vanish
        task.add_done_callback(self._drops.discard)

    async def Register(self, request: broker_pb2.RegisterRequest, context: grpc.aio.ServicerContext):
        try:
            lease_id, ttl_ms, revision = await self.registry.register(request.instance, request.ttl_ms)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except RegistryFull as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        log.info(
            "Registered %s (%s) at %s",
            request.instance.instance_id,
            request.instance.service_name,
            request.instance.address,
        )
        return broker_pb2.RegisterResponse(lease_id=lease_id, ttl_ms=ttl_ms, revision=revision)

    async def KeepAlive(
        self, request_iterator: AsyncIterator[broker_pb2.KeepAliveRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[broker_pb2.KeepAliveResponse]:
        leases: set[str] = set()
        try:
            async for req in request_iterator:
                if not req.lease_id:
                    await context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT, "lease_id is empty; send the id Register returned"
                    )
                try:
                    ttl_ms, expires_at = await self.registry.keepalive(req.lease_id)
                except UnknownLease:
                    await context.abort(
                        grpc.StatusCode.NOT_FOUND,
                        f"lease {quote(req.lease_id)} is unknown (it expired or the broker restarted); register again",
                    )
                leases.add(req.lease_id)
                yield broker_pb2.KeepAliveResponse(
                    lease_id=req.lease_id, ttl_ms=ttl_ms, expires_at=expires_at
                )
        finally:
            # However the stream ended, the leases it kept alive go with it (unless re-registered).
            # A crashed process breaks its stream a moment before the supervisor's ReportExit
            # arrives: wait STREAM_LOST_GRACE_S so the removal carries the precise exit reason.
            loop = asyncio.get_running_loop()
            for lease_id in leases:
                loop.call_later(STREAM_LOST_GRACE_S, self._drop_later, lease_id)

    async def Deregister(self, request: broker_pb2.DeregisterRequest, context: grpc.aio.ServicerContext):
        if not request.instance_id:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "instance_id is empty; say which instance leaves"
            )
        removed, revision = await self.registry.deregister(
            request.instance_id, request.lease_id, request.reason
        )
        return broker_pb2.DeregisterResponse(removed=removed, revision=revision)

    async def LookupService(
        self, request: broker_pb2.LookupServiceRequest, context: grpc.aio.ServicerContext
    ):
        if not request.service_name:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "service_name is empty; ask for e.g. 'calculator', 'calculator.v1.CalculatorService' "
                "or 'CalculatorService'",
            )
        too_long = length_problem("service_name", request.service_name)
        if too_long:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, too_long)
        # The seed's log line: "req-123 Lookup CalculatorService" (short name; the full one is metadata).
        log.info("Lookup %s", request.service_name.rsplit(".", 1)[-1], extra={"asked": request.service_name})
        found, revision = await self.registry.lookup(
            request.service_name, request.role, request.include_unhealthy
        )
        return broker_pb2.LookupServiceResponse(instances=found, revision=revision)

    async def ListServices(self, request: broker_pb2.ListServicesRequest, context: grpc.aio.ServicerContext):
        instances, revision = await self.registry.instances()
        return broker_pb2.ListServicesResponse(instances=instances, revision=revision)

    async def WatchServices(
        self, request: broker_pb2.WatchServicesRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[broker_pb2.ServiceEvent]:
        name, start = request.service_name, request.from_revision
        if start < 0:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"from_revision {start} is negative; use 0 or a revision"
            )
        events = self.registry.watch(name, start, self.watch_queue_limit)
        try:
            async for event in events:
                yield event
        except RevisionNotKept as exc:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, str(exc))
        except WatchOverflow as exc:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this watcher fell more than {exc.limit} events behind; "
                f"watch again with from_revision={exc.last} to resume",
            )
        finally:
            await events.aclose()

    async def ReportExit(self, request: broker_pb2.ReportExitRequest, context: grpc.aio.ServicerContext):
        if not request.instance_id:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "instance_id is empty; say which instance exited"
            )
        removed, revision = await self.registry.report_exit(request.instance_id, request.pid, request.reason)
        return broker_pb2.ReportExitResponse(removed=removed, revision=revision)

    async def SetInstanceHealth(
        self, request: broker_pb2.SetInstanceHealthRequest, context: grpc.aio.ServicerContext
    ):
        if not request.instance_id:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "instance_id is empty; say whose health changed"
            )
        if request.state not in health_pb2.HealthState.values():
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"state {request.state} is not a HealthState; use STARTING, HEALTHY, DEGRADED or UNHEALTHY",
            )
        known, revision = await self.registry.set_health(request.instance_id, request.state, request.reason)
        return broker_pb2.SetInstanceHealthResponse(known=known, revision=revision)


async def main() -> None:
    """Serve the broker until SIGTERM/SIGINT."""
    registry = make_backend(store_from_env())
    # The broker is the one service that never registers elsewhere, whatever the environment says.
    identity = dataclasses.replace(Identity.from_env(default_service="broker"), broker_address="")
    agent = Agent(
        [BROKER_GRPC_SERVICE],
        default_service="broker",
        identity=identity,
        interceptors=[StoreStatusInterceptor()],
    )
    servicer = BrokerServicer(registry)
    broker_pb2_grpc.add_BrokerServiceServicer_to_server(servicer, agent.server)
    agent.http.serve(servicer, BROKER_GRPC_SERVICE)  # and over Connect
    agent.bind()
    await registry.start()
    await registry.register(agent.instance(health_pb2.HEALTHY), permanent=True)
    expiry = asyncio.create_task(servicer.expire_leases(), name="broker-lease-expiry")
    try:
        await agent.start()
        await agent.wait_for_stop()
    finally:
        servicer.close()
        expiry.cancel()
        await agent.stop()
        await registry.close()
