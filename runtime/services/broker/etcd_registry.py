"""The broker on etcd (``store: etcd``): registrations are etcd keys, WatchServices an etcd watch.

Keys (under the session prefix, ``/runtime-lab/`` by default):

    broker/instances/<instance id>   the instance's last ServiceEvent (ADDED or UPDATED, its
                                     reason, the ServiceInstance), under the broker's etcd lease
    broker/removed/<instance id>     the REMOVED event with its reason, written in the same
                                     transaction that deletes the instance key (same revision)

**Who keeps the lease alive: the broker**, not each agent. The agents speak only the broker's
gRPC API, in four languages (Python, TypeScript, Rust, C++); giving each an etcd client would
spread the cluster's address and a second protocol through every one of them. The broker already
sees what ends a registration at once and with its reason (a broken KeepAlive stream, the
supervisor's ReportExit, the health service's UNHEALTHY), which an etcd lease alone cannot say.
So the lab leases (ttl_ms, KeepAlive) stay the broker's bookkeeping (the same Registry as the
local store), every change it makes is written to etcd before the RPC answers (no registration
is acknowledged that etcd does not hold), and all keys hang on **one etcd lease the broker keeps
alive**: when the broker dies, etcd removes its registrations after ``BROKER_LEASE_TTL_S``.

Lookups and ListServices read etcd. WatchServices is an etcd watch over ``broker/``: from revision
0 it sends the instances read at revision R and SNAPSHOT_END(R), then watches from R+1; from a
revision r it watches from r+1, and a revision etcd has compacted gives the same OUT_OF_RANGE
("revision r is no longer kept (oldest kept is C); watch again from revision 0"). Revisions are
etcd's: they never go back, so a watcher may resume across broker restarts too.

When etcd cannot take a write (no quorum), the RPC answers UNAVAILABLE naming the down members,
the change stays queued in order, and it is written when the cluster answers again.

The lab's own members (``store: etcd``, names from the cluster file) are registered by the broker
as service ``etcd`` (like Consul registering an external service): etcd has no agent, and this
way the health service probes the members like any instance and shows which are down. A member
removed on its exit is registered again once its client port answers (checked every
``LEASE_REFRESH_S``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncGenerator
from urllib.parse import quote as url_quote

from runtime.client.etcd import (
    EtcdSession,
    RevisionCompacted,
    StoreChoice,
    StoreUnavailable,
    delete_op,
    prefix_end,
    put_op,
    txn_request,
)
from runtime.services.broker.backend import EventQueue
from runtime.services.broker.registry import (
    ADDED,
    HIDDEN_STATES,
    REMOVED,
    SNAPSHOT_END,
    Registry,
    RevisionNotKept,
    matches,
    now_ms,
)
from runtime.v1 import broker_pb2, health_pb2

log = logging.getLogger("runtime.services.broker")

BROKER_LEASE_TTL_S = 5  # a dead broker's registrations leave etcd within this
LEASE_REFRESH_S = 1.0
PENDING_LIMIT = 10_000  # changes queued while etcd has no quorum; beyond: rewrite all from the book
BROKER_GONE = "lease expired (the broker that held it stopped)"
ETCD_SERVICE = "etcd"  # the lab service name of the members (lab.etcd.yaml)
ETCD_GRPC_SERVICES = ("etcdserverpb.KV", "etcdserverpb.Watch", "etcdserverpb.Lease")
MEMBER_PROBE_S = 0.2


class EtcdRegistry:
    """RegistryBackend over an etcd cluster (see the module docstring)."""

    def __init__(
        self,
        choice: StoreChoice,
        *,
        session: EtcdSession | None = None,
        prefix: str = "",
        book: Registry | None = None,
    ) -> None:
        self.session = session or (EtcdSession(choice, prefix) if prefix else EtcdSession(choice))
        self.book = book or Registry()
        self._pending: collections.deque[broker_pb2.ServiceEvent] = collections.deque()
        self._resync = False
        self.book.listeners.append(self._queue_change)
        self._lock = asyncio.Lock()
        self._lease = 0
        self._keeper: asyncio.Task[None] | None = None
        self._queues: set[EventQueue] = set()
        self._root = self.session.key("broker", "")
        self._instances = self.session.key("broker", "instances", "")
        self._removed = self.session.key("broker", "removed", "")

    # -- writing: the book's changes, in order ------------------------------------------------

    def _queue_change(self, event: broker_pb2.ServiceEvent) -> None:
        if len(self._pending) >= PENDING_LIMIT:
            self._pending.clear()
            self._resync = True  # too much queued: write the book's whole state instead
            return
        self._pending.append(event)

    async def start(self) -> None:
        """Take the broker's etcd lease and keep it alive."""
        async with self._lock:
            await self._new_lease()
        await self._register_members()
        self._keeper = asyncio.create_task(self._keep_lease(), name="broker-etcd-lease")

    async def _register_members(self) -> None:
        """Register the lab's etcd members that are missing and whose client port answers."""
        known = {i.instance_id for i in self.book.instances()}
        for endpoint, name in self.session.choice.names.items():
            if name == endpoint or name in known:
                continue  # an external cluster (no member names), or registered already
            host, _, port = endpoint.rpartition(":")
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), MEMBER_PROBE_S)
            except (OSError, TimeoutError):
                continue
            writer.close()
            await writer.wait_closed()
            member = broker_pb2.ServiceInstance(
                service_name=ETCD_SERVICE, instance_id=name, address=endpoint, language="go",
                grpc_services=list(ETCD_GRPC_SERVICES), role="store",
            )  # fmt: skip
            self.book.register(member, permanent=True)
        await self._flush()

    async def _new_lease(self) -> None:
        self._lease = await self.session.grant(BROKER_LEASE_TTL_S)

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(LEASE_REFRESH_S)
            try:
                alive = self._lease != 0 and await self.session.refresh(self._lease)
                if not alive:  # lapsed while etcd had no quorum: its keys are gone, write them again
                    log.warning("the broker's etcd lease lapsed; writing every registration again")
                    async with self._lock:
                        await self._new_lease()
                        self._resync = True
                await self._flush()
                await self._register_members()
            except StoreUnavailable as exc:
                log.warning("%s", exc)
            except Exception:  # the keeper must outlive any one failure: its lease holds every key
                log.exception("keeping the broker's etcd lease alive failed; trying again")

    async def _flush(self) -> int:
        """Write every queued change (in order); the revision of the last write (0: none)."""
        async with self._lock:
            if not self._lease:
                await self._new_lease()
            revision = 0
            if self._resync:
                revision = await self._rewrite_all()
                self._resync = False
                self._pending.clear()
            while self._pending:
                revision = await self._write(self._pending[0])
                self._pending.popleft()
            return revision

    async def _rewrite_all(self) -> int:
        """etcd := the book: every instance written again, every other stored one removed."""
        revision = 0
        held = {i.instance_id for i in self.book.instances()}
        for stored in (await self._stored())[0]:
            if stored.instance_id not in held:
                gone = broker_pb2.ServiceEvent(
                    type=REMOVED,
                    instance=stored,
                    reason="removed while etcd was unreachable",
                    timestamp=now_ms(),
                )
                revision = await self._write(gone)
        for inst in self.book.instances():
            event = broker_pb2.ServiceEvent(type=ADDED, instance=inst, reason="restored", timestamp=now_ms())
            revision = await self._write(event)
        return revision

    async def _write(self, event: broker_pb2.ServiceEvent) -> int:
        name = url_quote(event.instance.instance_id, safe="").encode()
        stored = broker_pb2.ServiceEvent()
        stored.CopyFrom(event)
        stored.revision = 0  # etcd's revision is the event's revision
        body = stored.SerializeToString()
        if event.type == REMOVED:
            ops = [put_op(self._removed + name, body, self._lease), delete_op(self._instances + name)]
        else:
            ops = [put_op(self._instances + name, body, self._lease)]
        reply = await self.session.txn(txn_request([], ops, []))
        return int(reply.header.revision)

    async def _changed(self) -> int:
        revision = await self._flush()
        return revision or await self._revision()

    async def _revision(self) -> int:
        revision, _ = await self.session.range(self._root + b"\x00revision")
        return revision

    # -- the book's operations, then etcd -----------------------------------------------------

    async def register(
        self, instance: broker_pb2.ServiceInstance, ttl_ms: int = 0, *, permanent: bool = False
    ) -> tuple[str, int, int]:
        """See RegistryBackend."""
        lease_id, ttl, _ = self.book.register(instance, ttl_ms, permanent=permanent)
        return lease_id, ttl, await self._changed()

    async def keepalive(self, lease_id: str) -> tuple[int, int]:
        """See RegistryBackend (the broker's own etcd lease covers the key)."""
        return self.book.keepalive(lease_id)

    async def drop_lease(self, lease_id: str, reason: str) -> bool:
        """See RegistryBackend."""
        removed = self.book.drop_lease(lease_id, reason)
        if removed:
            with contextlib.suppress(StoreUnavailable):  # queued; written when etcd answers
                await self._flush()
        return removed

    async def deregister(self, instance_id: str, lease_id: str = "", reason: str = "") -> tuple[bool, int]:
        """See RegistryBackend."""
        removed = self.book.deregister(instance_id, lease_id, reason)
        return removed, await self._changed()

    async def report_exit(self, instance_id: str, pid: int = 0, reason: str = "") -> tuple[bool, int]:
        """See RegistryBackend."""
        removed = self.book.report_exit(instance_id, pid, reason)
        return removed, await self._changed()

    async def set_health(
        self, instance_id: str, state: health_pb2.HealthState, reason: str = ""
    ) -> tuple[bool, int]:
        """See RegistryBackend."""
        known = self.book.set_health(instance_id, state, reason)
        return known, await self._changed()

    async def expire(self) -> list[str]:
        """See RegistryBackend."""
        gone = self.book.expire()
        if gone or self._pending:
            with contextlib.suppress(StoreUnavailable):
                await self._flush()
        return gone

    # -- reading etcd --------------------------------------------------------------------------

    async def _stored(self) -> tuple[list[broker_pb2.ServiceInstance], int]:
        revision, kvs = await self.session.range(self._instances, prefix_end(self._instances))
        return [broker_pb2.ServiceEvent.FromString(kv.value).instance for kv in kvs], revision

    async def lookup(
        self, name: str, role: str = "", include_unhealthy: bool = False
    ) -> tuple[list[broker_pb2.ServiceInstance], int]:
        """See RegistryBackend: a linearizable read of the instance keys."""
        stored, revision = await self._stored()
        found = [
            i
            for i in stored
            if matches(i, name)
            and (not role or i.role == role)
            and (include_unhealthy or i.health not in HIDDEN_STATES)
        ]
        return found, revision

    async def instances(self) -> tuple[list[broker_pb2.ServiceInstance], int]:
        """See RegistryBackend."""
        return await self._stored()

    async def watch(
        self, name: str, from_revision: int, limit: int
    ) -> AsyncGenerator[broker_pb2.ServiceEvent, None]:
        """See RegistryBackend: an etcd watch over the broker's keys."""
        q = EventQueue(name, limit)
        if from_revision == 0:
            stored, revision = await self._stored()
            ts = now_ms()
            for inst in stored:
                if matches(inst, name):
                    yield broker_pb2.ServiceEvent(
                        type=ADDED, instance=inst, revision=revision, reason="snapshot", timestamp=ts
                    )
            yield broker_pb2.ServiceEvent(type=SNAPSHOT_END, revision=revision, timestamp=now_ms())
            last = revision
        else:
            current = await self._revision()
            if from_revision > current:
                raise RevisionNotKept(from_revision, 0, current)
            last = from_revision
        self._queues.add(q)
        pump = asyncio.create_task(self._pump(q, last), name="broker-etcd-watch")
        try:
            async for event in q.drain(last):
                yield event
        finally:
            self._queues.discard(q)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump

    async def _pump(self, q: EventQueue, after: int) -> None:
        """etcd events after ``after`` -> ServiceEvents in ``q`` (or the error that ends the watch)."""
        removed_at: tuple[bytes, int] = (b"", 0)  # the REMOVED put that goes with the next delete
        try:
            async for ev in self.session.watch(self._root, prefix_end(self._root), after + 1, prev_kv=True):
                key, revision = ev.kv.key, ev.kv.mod_revision
                if key.startswith(self._removed):
                    if ev.kind == "PUT":
                        removed_at = (key[len(self._removed) :], revision)
                        q.offer(_event(ev.kv.value, revision))
                elif key.startswith(self._instances):
                    if ev.kind == "PUT":
                        q.offer(_event(ev.kv.value, revision))
                    elif removed_at != (key[len(self._instances) :], revision) and ev.prev_kv is not None:
                        gone = _event(ev.prev_kv.value, revision)
                        gone.type, gone.reason, gone.timestamp = REMOVED, BROKER_GONE, now_ms()
                        q.offer(gone)
        except RevisionCompacted as exc:
            current = await self._revision()
            q.offer(RevisionNotKept(after, exc.compacted, current))

    def close_watches(self) -> None:
        """See RegistryBackend."""
        for q in list(self._queues):
            q.close()

    async def close(self) -> None:
        """Revoke the broker's lease (its registrations leave etcd now) and close the session."""
        self.close_watches()
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        if self._lease:
            await self.session.revoke(self._lease)
        await self.session.close()


def _event(value: bytes, revision: int) -> broker_pb2.ServiceEvent:
    event = broker_pb2.ServiceEvent.FromString(value)
    event.revision = revision
    return event
