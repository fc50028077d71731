"""The health service's two links to the broker.

* ``BrokerFollower`` follows WatchServices: every registered instance is tracked (probed when it
  does not push); an instance that leaves the registry is no longer probed. Reconnects with
  backoff, resuming from the last revision (or from a fresh snapshot when that is gone).
* ``BrokerHealthPusher`` tells the broker every state change with SetInstanceHealth, so UNHEALTHY
  instances leave LookupService and come back when HEALTHY. Pending changes are coalesced per
  instance (bounded by the number of instances; the latest state always wins), and re-sent
  when the broker's view differs from ours (e.g. after an instance re-registers).
"""

from __future__ import annotations

import asyncio
import logging

import grpc

from runtime.services.health.channel_task import ChannelTask
from runtime.services.health.probe import Prober
from runtime.services.health.settings import HealthSettings
from runtime.services.health.store import UNHEALTHY, UNKNOWN, HealthStore, as_state
from runtime.v1 import broker_pb2, broker_pb2_grpc, health_pb2

log = logging.getLogger("runtime.services.health")

SOURCE = "broker"
ADDED = broker_pb2.SERVICE_EVENT_TYPE_ADDED
UPDATED = broker_pb2.SERVICE_EVENT_TYPE_UPDATED
REMOVED = broker_pb2.SERVICE_EVENT_TYPE_REMOVED
SNAPSHOT_END = broker_pb2.SERVICE_EVENT_TYPE_SNAPSHOT_END


class BrokerHealthPusher(ChannelTask):
    """Sends the latest state of each changed instance to the broker (SetInstanceHealth)."""

    TASK_NAME = "broker health pusher"

    MAX_TRACKED = 10_000

    def __init__(self, broker_address: str, settings: HealthSettings) -> None:
        self.settings = settings
        super().__init__(broker_address)
        self._stub = broker_pb2_grpc.BrokerServiceStub(self._channel)
        self._pending: dict[str, tuple[int, str, int]] = {}
        self._wake = asyncio.Event()
        # instance id -> timestamp (ms) of the newest state the broker has acknowledged.
        self._delivered: dict[str, int] = {}
        self._delivered_changed = asyncio.Condition()
        self.sent = 0

    def on_event(self, event: health_pb2.HealthEvent) -> None:
        """Store listener: queue a state change for the broker (never blocks)."""
        if event.old_state != event.new_state:
            self.push(event.instance_id, event.new_state, event.reason, event.timestamp)

    def push(self, instance_id: str, state: int, reason: str, timestamp: int = 0) -> None:
        """Queue ``state`` for ``instance_id``, replacing any older pending state."""
        self._pending[instance_id] = (state, reason, timestamp)
        self._wake.set()

    async def wait_delivered(self, instance_id: str, timestamp: int, timeout_s: float) -> bool:
        """Wait until the broker has the instance's state as of ``timestamp`` (False on timeout).

        WatchHealth waits for this before telling subscribers an instance is UNHEALTHY, so whoever
        sees UNHEALTHY can rely on the broker no longer handing that instance out.
        """

        def done() -> bool:
            return self._delivered.get(instance_id, 0) >= timestamp

        async with self._delivered_changed:
            try:
                await asyncio.wait_for(self._delivered_changed.wait_for(done), timeout_s)
            except TimeoutError:
                return False
        return True

    async def _mark_delivered(self, instance_id: str, timestamp: int) -> None:
        if len(self._delivered) > self.MAX_TRACKED and instance_id not in self._delivered:
            self._delivered.clear()  # bounded; the next waiters simply find nothing and time out
        self._delivered[instance_id] = max(self._delivered.get(instance_id, 0), timestamp)
        async with self._delivered_changed:
            self._delivered_changed.notify_all()

    async def _run(self) -> None:
        backoff = self.settings.reconnect_initial_s
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                instance_id, (state, reason, timestamp) = next(iter(self._pending.items()))
                del self._pending[instance_id]
                req = broker_pb2.SetInstanceHealthRequest(
                    instance_id=instance_id, state=as_state(state), reason=reason
                )
                try:
                    await self._stub.SetInstanceHealth(req, timeout=self.settings.call_timeout_s)
                    self.sent += 1
                    backoff = self.settings.reconnect_initial_s
                    await self._mark_delivered(instance_id, timestamp)
                except grpc.aio.AioRpcError as err:
                    log.debug("SetInstanceHealth(%s) failed: %s", instance_id, err.code().name)
                    # Keep it unless a newer state arrived meanwhile, then retry after a pause.
                    self._pending.setdefault(instance_id, (state, reason, timestamp))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.settings.reconnect_max_s)


class BrokerFollower(ChannelTask):
    """Follows the broker's registry: tracks instances for probing and keeps the broker in sync."""

    TASK_NAME = "broker follower"

    def __init__(
        self,
        broker_address: str,
        store: HealthStore,
        prober: Prober,
        pusher: BrokerHealthPusher,
        settings: HealthSettings,
    ) -> None:
        self.store = store
        self.prober = prober
        self.pusher = pusher
        self.settings = settings
        super().__init__(broker_address)
        self._stub = broker_pb2_grpc.BrokerServiceStub(self._channel)
        self.revision = 0
        self.connected = asyncio.Event()
        self._snapshot_ids: set[str] | None = None

    async def _run(self) -> None:
        backoff = self.settings.reconnect_initial_s
        while True:
            req = broker_pb2.WatchServicesRequest(from_revision=self.revision)
            self._snapshot_ids = set() if self.revision == 0 else None
            try:
                async for event in self._stub.WatchServices(req):
                    self.connected.set()
                    backoff = self.settings.reconnect_initial_s
                    self.handle(event)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.OUT_OF_RANGE:
                    log.info("broker no longer keeps revision %d; starting from a snapshot", self.revision)
                    self.revision = 0
                    continue
                log.debug("broker watch broke: %s", err.code().name)
            self.connected.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.settings.reconnect_max_s)

    def handle(self, event: broker_pb2.ServiceEvent) -> None:
        """Apply one ServiceEvent (public so tests can feed scripted events)."""
        if event.revision:
            self.revision = max(self.revision, event.revision)
        if event.type == SNAPSHOT_END:
            self._end_snapshot()
            return
        inst = event.instance
        if not inst.instance_id:
            return
        if event.type in (ADDED, UPDATED):
            if self._snapshot_ids is not None:
                self._snapshot_ids.add(inst.instance_id)
            record = self.store.ensure(inst.service_name, inst.instance_id, inst.address)
            if inst.address:
                expect_push = inst.language in ("", "python")  # Python services embed the agent
                self.prober.track(inst.service_name, inst.instance_id, inst.address, expect_push=expect_push)
            # The broker's view differs from ours (a re-registration, a broker restart): resend.
            if record.state != UNKNOWN and inst.health != record.state:
                self.pusher.push(inst.instance_id, record.state, record.message, record.updated_ms)
        elif event.type == REMOVED:
            self._removed(inst.instance_id, inst.service_name, event.reason)

    def _removed(self, instance_id: str, service_name: str, reason: str) -> None:
        self.prober.untrack(instance_id)
        record = self.store.get(instance_id)
        # Pushing instances are judged by their stream, the supervisor by the exit; an instance we
        # only probed has no other voice, so leaving the registry makes it UNHEALTHY.
        if record is not None and not record.pushing and record.state not in (UNHEALTHY, UNKNOWN):
            self.store.apply(
                service_name,
                instance_id,
                UNHEALTHY,
                f"left the broker's registry: {reason or 'deregistered'}",
                source=SOURCE,
            )

    def _end_snapshot(self) -> None:
        # After a fresh snapshot, instances the broker no longer has are not probed any more.
        seen = self._snapshot_ids or set()
        self._snapshot_ids = None
        for instance_id in self.prober.tracked():
            if instance_id not in seen:
                record = self.store.get(instance_id)
                self._removed(instance_id, record.service_name if record else "", "gone after broker restart")
