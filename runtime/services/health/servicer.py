"""The health service: live states of every instance, their history, and who is down.

    python -m runtime.services.health

Three inputs feed one store (``health_store.HealthStore``):

* push: instances report over ``ReportHealth`` (the agent's HealthReporter); a stream that ends
  without a final report makes the instance UNHEALTHY at once ("report stream lost");
* pull: registered instances that do not push are probed (``health_probe``);
* the supervisor's process events: exits, spawns, backoff, FATAL (``health_supervisor``).

Every transition goes out to ``WatchHealth`` subscribers and to the broker (SetInstanceHealth),
so UNHEALTHY instances leave LookupService until they are HEALTHY again (``health_broker``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc

from runtime.errors import length_problem, listing, quote
from runtime.identity import HEALTH_GRPC_SERVICE, Identity
from runtime.services.health.broker_link import BrokerFollower, BrokerHealthPusher
from runtime.services.health.probe import Prober
from runtime.services.health.settings import HealthSettings
from runtime.services.health.store import UNHEALTHY, UNKNOWN, HealthStore, state_name
from runtime.services.health.supervisor_link import SupervisorFollower
from runtime.v1 import common_pb2, health_pb2, health_pb2_grpc

SOURCE_PUSH = "push"
STREAM_LOST = "report stream lost"
VALID_REPORT_STATES = "STARTING (1), HEALTHY (2), DEGRADED (3) or UNHEALTHY (4)"
MAX_NAME_CHARS = 128  # service names and instance ids in reports


def report_problem(status: health_pb2.HealthStatus, stream_instance: str) -> str:
    """What is wrong with one pushed HealthStatus ("" when nothing is)."""
    if not status.instance_id:
        return "instance_id is empty: every report names its instance, e.g. 'calculator-1'"
    for field, value in (("instance_id", status.instance_id), ("service_name", status.service_name)):
        if len(value) > MAX_NAME_CHARS:
            return f"{field} is {len(value)} characters long; at most {MAX_NAME_CHARS} are allowed"
    if not status.service_name:
        return f"service_name is empty in the report of {quote(status.instance_id)}: name its service, e.g. 'calculator'"
    if stream_instance and status.instance_id != stream_instance:
        return (
            f"this stream reports {quote(stream_instance)}, not {quote(status.instance_id)}: open one ReportHealth stream "
            "per instance"
        )
    if status.state not in health_pb2.HealthState.values() or status.state == UNKNOWN:
        return f"state {state_name(status.state)} ({status.state}) cannot be reported; report {VALID_REPORT_STATES}"
    return ""


class HealthServicer(health_pb2_grpc.HealthServiceServicer):
    """The gRPC face of the store: ReportHealth, CheckHealth, WatchHealth, history, list."""

    def __init__(self, store: HealthStore, broker_sync_timeout_s: float = 0.2) -> None:
        self.store = store
        # Set when a broker is followed: UNHEALTHY reaches watchers only after the broker has it.
        self.pusher: BrokerHealthPusher | None = None
        self.broker_sync_timeout_s = broker_sync_timeout_s
        # Set while this process stops: its own server ends every stream, which says nothing
        # about the instances (they reconnect to the next health service).
        self.closing = False
        # instance id -> the token of its current push stream; an older stream ending later
        # (a restarted process reconnected first) must not mark the new one lost.
        self._streams: dict[str, object] = {}
        self.reports = 0

    async def ReportHealth(
        self, request_iterator: AsyncIterator[health_pb2.HealthStatus], context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthAck:
        token = object()
        instance = ""
        service = ""
        final = False
        count = 0
        try:
            async for status in request_iterator:
                problem = report_problem(status, instance)
                if problem:
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
                if not instance:
                    instance, service = status.instance_id, status.service_name
                    self._streams[instance] = token
                record = self.store.ensure(service, instance, status.address)
                record.pushing = True
                final = status.final
                message = status.message or state_name(status.state).lower()
                count += 1
                self.reports += 1
                if record.unresponsive and not final:
                    # Probes found it not responding: its word waits until they pass again (probe.py).
                    record.held = (status.state, message)
                    continue
                if final:  # it answered after all, and is leaving
                    record.unresponsive, record.held = False, None
                self.store.apply(
                    service,
                    instance,
                    status.state,
                    message,
                    source=SOURCE_PUSH,
                    address=status.address,
                    metadata=dict(status.metadata),
                    retired=final,
                )
                if final:
                    break
            return health_pb2.HealthAck(ok=True, message=f"{count} report(s) accepted", reports=count)
        finally:
            # Runs on a clean end, on abort and when the client vanished (the task is cancelled).
            if instance and self._streams.get(instance) is token:
                del self._streams[instance]
                ended = self.store.get(instance)
                if ended is not None:
                    ended.pushing = False
                if not final and not self.closing:
                    self.store.apply(service, instance, UNHEALTHY, STREAM_LOST, source=SOURCE_PUSH)

    async def CheckHealth(
        self, request: health_pb2.ServiceKey, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthStatus:
        known = self.store.service_names()
        known_text = listing(known) or "none yet"
        if not request.service_name:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"service_name is empty: name a service (known services: {known_text})",
            )
        too_long = length_problem("service_name", request.service_name) or length_problem(
            "instance_id", request.instance_id
        )
        if too_long:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, too_long)
        if request.service_name not in known:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no health is known for service {quote(request.service_name)}; known services: {known_text}",
            )
        if not request.instance_id:
            status = self.store.service_status(request.service_name)
            assert status is not None
            return status
        record = self.store.get(request.instance_id)
        if record is None or record.service_name != request.service_name:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, self._unknown_instance(request.service_name, request.instance_id)
            )
        assert record is not None
        return record.status()

    async def WatchHealth(
        self, request: common_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[health_pb2.HealthEvent]:
        ready = asyncio.Event()
        snapshot, sub = self.store.subscribe(wake=ready.set)
        try:
            for event in snapshot:
                yield event
            while True:
                await ready.wait()
                ready.clear()
                for event in sub.drain():
                    if (
                        self.pusher is not None
                        and event.new_state == UNHEALTHY
                        and event.old_state != UNHEALTHY
                    ):
                        await self.pusher.wait_delivered(
                            event.instance_id, event.timestamp, self.broker_sync_timeout_s
                        )
                    yield event
        finally:
            self.store.unsubscribe(sub)

    async def GetHealthHistory(
        self, request: health_pb2.HealthHistoryRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthHistory:
        if request.limit < 0:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"limit is {request.limit}: use 0 (everything kept) or a positive number",
            )
        known = self.store.service_names()
        if request.service_name and request.service_name not in known:
            await context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"no health is known for service {quote(request.service_name)}; known services: {listing(known) or 'none yet'}",
            )
        if request.instance_id:
            record = self.store.get(request.instance_id)
            if record is None or (request.service_name and record.service_name != request.service_name):
                await context.abort(
                    grpc.StatusCode.NOT_FOUND,
                    self._unknown_instance(request.service_name, request.instance_id),
                )
        events = self.store.history(request.service_name, request.instance_id, request.limit)
        return health_pb2.HealthHistory(events=events)

    async def ListHealth(
        self, request: common_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthList:
        return health_pb2.HealthList(statuses=[i.status() for i in self.store.instances()])

    def _unknown_instance(self, service: str, instance_id: str) -> str:
        names = [i.instance_id for i in self.store.instances() if not service or i.service_name == service]
        where = f"service {quote(service)}" if service else "the lab"
        return f"{where} has no instance {quote(instance_id)}; known instances: {listing(names) or 'none'}"


class HealthService:
    """The store plus its inputs and outputs, wired together for one process."""

    def __init__(self, settings: HealthSettings | None = None) -> None:
        self.settings = settings or HealthSettings.from_env()
        s = self.settings
        self.store = HealthStore(
            history_per_instance=s.history_per_instance,
            subscriber_queue=s.subscriber_queue,
            max_instances=s.max_instances,
        )
        self.servicer = HealthServicer(self.store, s.broker_sync_timeout_s)
        self.prober: Prober | None = None
        self.pusher: BrokerHealthPusher | None = None
        self.broker: BrokerFollower | None = None
        self.supervisor: SupervisorFollower | None = None

    def start(self, identity: Identity) -> None:
        """Start probing and following the broker and supervisor that ``identity`` names."""
        self.prober = Prober(self.store, self.settings)
        if identity.broker_address:
            self.pusher = BrokerHealthPusher(identity.broker_address, self.settings)
            self.store.add_listener(self.pusher.on_event)
            self.pusher.start()
            self.servicer.pusher = self.pusher
            self.broker = BrokerFollower(
                identity.broker_address, self.store, self.prober, self.pusher, self.settings
            )
            self.broker.start()
        if identity.supervisor_address:
            self.supervisor = SupervisorFollower(
                identity.supervisor_address, self.store, self.prober, self.settings, identity.instance_id
            )
            self.supervisor.start()

    async def close(self) -> None:
        """Stop followers, pusher and probes (before the server ends the report streams)."""
        self.servicer.closing = True
        for part in (self.supervisor, self.broker, self.pusher, self.prober):
            if part is not None:
                with contextlib.suppress(Exception):
                    await part.close()


async def main() -> None:
    """Serve the health service through the agent until SIGTERM."""
    from runtime.agent import Agent

    agent = Agent([HEALTH_GRPC_SERVICE], default_service="health")
    service = HealthService()
    health_pb2_grpc.add_HealthServiceServicer_to_server(service.servicer, agent.server)
    agent.http.serve(service.servicer, HEALTH_GRPC_SERVICE)  # and over Connect (curl, the web page)
    service.start(agent.identity)
    try:
        await agent.start()
        await agent.wait_for_stop()
    finally:
        # Broker sync stops first: the server ending every report stream must not make the
        # broker hide every instance of the lab.
        await service.close()
        await agent.stop()
