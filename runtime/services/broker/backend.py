"""The broker's store seam: what BrokerServicer needs, and the local (in-process) implementation.

    RegistryBackend    the protocol below (every method the servicer calls)
    ├── LocalRegistry  the in-process Registry + bounded subscriber queues: ``store: local``
    └── EtcdRegistry   runtime/services/broker/etcd_registry.py: ``store: etcd``

Both keep the same rules (validation, TTLs, reasons, lookups hiding UNHEALTHY) and raise the same
exceptions (ValueError, RegistryFull, UnknownLease, RevisionNotKept, WatchOverflow), so the
servicer's statuses and messages do not depend on the store. Every change answers the revision
it was made at; a watch yields ServiceEvents (a snapshot and SNAPSHOT_END from revision 0, or what
came after a revision), ends with WatchOverflow when its bounded queue overflows, and ends cleanly
when the broker closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Protocol

from runtime.client.store_choice import StoreChoice
from runtime.services.broker.registry import SNAPSHOT_END, Registry, matches, now_ms
from runtime.v1 import broker_pb2, health_pb2

CLOSED = object()  # put in a watch queue: the stream ends cleanly


class WatchOverflow(Exception):
    """A watcher fell more than ``limit`` events behind; it resumes after revision ``last``."""

    def __init__(self, limit: int, last: int) -> None:
        self.limit = limit
        self.last = last
        super().__init__(f"watcher fell more than {limit} events behind (last revision {last})")


class EventQueue:
    """One watch stream's bounded queue: overflow is remembered (and reported), never silent."""

    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.queue: asyncio.Queue[object] = asyncio.Queue(maxsize=limit + 1)  # +1: room for CLOSED
        self.limit = limit
        self.overflowed = False

    def offer(self, item: object) -> None:
        """Queue an event (only those matching the name) or an exception for the reader."""
        if isinstance(item, broker_pb2.ServiceEvent) and not matches(item.instance, self.name):
            return
        if self.overflowed:
            return
        if self.queue.qsize() >= self.limit:
            self.overflowed = True  # the stream notices and ends; nothing is dropped silently
            return
        self.queue.put_nowait(item)

    def close(self) -> None:
        """End the stream cleanly (the broker stops)."""
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(CLOSED)

    async def drain(self, last: int) -> AsyncGenerator[broker_pb2.ServiceEvent, None]:
        """Yield queued events until CLOSED; raise WatchOverflow or a queued exception."""
        while True:
            if self.overflowed:
                raise WatchOverflow(self.limit, last)
            item = await self.queue.get()
            if item is CLOSED:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, broker_pb2.ServiceEvent)
            yield item
            last = item.revision


class RegistryBackend(Protocol):
    """Registrations under leases, lookups and watches: what BrokerServicer calls."""

    async def start(self) -> None:
        """Connect (etcd: take the broker's lease); nothing for the local store."""
        ...

    async def register(
        self, instance: broker_pb2.ServiceInstance, ttl_ms: int = 0, *, permanent: bool = False
    ) -> tuple[str, int, int]:
        """(lease_id, ttl_ms, revision); ValueError for bad input, RegistryFull."""
        ...

    async def keepalive(self, lease_id: str) -> tuple[int, int]:
        """(ttl_ms, expires_at Unix ms); UnknownLease."""
        ...

    async def drop_lease(self, lease_id: str, reason: str) -> bool:
        """Remove the instance held by ``lease_id`` (if it still is)."""
        ...

    async def deregister(self, instance_id: str, lease_id: str = "", reason: str = "") -> tuple[bool, int]:
        """(removed, revision)."""
        ...

    async def report_exit(self, instance_id: str, pid: int = 0, reason: str = "") -> tuple[bool, int]:
        """(removed, revision)."""
        ...

    async def set_health(
        self, instance_id: str, state: health_pb2.HealthState, reason: str = ""
    ) -> tuple[bool, int]:
        """(known, revision)."""
        ...

    async def expire(self) -> list[str]:
        """Remove instances whose lease ran out; their ids."""
        ...

    async def lookup(
        self, name: str, role: str = "", include_unhealthy: bool = False
    ) -> tuple[list[broker_pb2.ServiceInstance], int]:
        """(instances serving ``name``, revision)."""
        ...

    async def instances(self) -> tuple[list[broker_pb2.ServiceInstance], int]:
        """(every instance, revision)."""
        ...

    def watch(
        self, name: str, from_revision: int, limit: int
    ) -> AsyncGenerator[broker_pb2.ServiceEvent, None]:
        """Snapshot + SNAPSHOT_END (from 0) or the events after ``from_revision``, then live ones."""
        ...

    def close_watches(self) -> None:
        """End every watch stream cleanly."""
        ...

    async def close(self) -> None:
        """Release connections (etcd: revoke the broker's lease, so its registrations go)."""
        ...


class LocalRegistry:
    """The default store: the in-process Registry; watches fed by its listener."""

    def __init__(self, registry: Registry) -> None:
        self.book = registry
        self._queues: set[EventQueue] = set()
        registry.listeners.append(self._publish)

    def _publish(self, event: broker_pb2.ServiceEvent) -> None:
        for q in list(self._queues):
            q.offer(event)

    async def start(self) -> None:
        """See RegistryBackend."""

    async def register(
        self, instance: broker_pb2.ServiceInstance, ttl_ms: int = 0, *, permanent: bool = False
    ) -> tuple[str, int, int]:
        """See RegistryBackend."""
        return self.book.register(instance, ttl_ms, permanent=permanent)

    async def keepalive(self, lease_id: str) -> tuple[int, int]:
        """See RegistryBackend."""
        return self.book.keepalive(lease_id)

    async def drop_lease(self, lease_id: str, reason: str) -> bool:
        """See RegistryBackend."""
        return self.book.drop_lease(lease_id, reason)

    async def deregister(self, instance_id: str, lease_id: str = "", reason: str = "") -> tuple[bool, int]:
        """See RegistryBackend."""
        return self.book.deregister(instance_id, lease_id, reason), self.book.revision

    async def report_exit(self, instance_id: str, pid: int = 0, reason: str = "") -> tuple[bool, int]:
        """See RegistryBackend."""
        return self.book.report_exit(instance_id, pid, reason), self.book.revision

    async def set_health(
        self, instance_id: str, state: health_pb2.HealthState, reason: str = ""
    ) -> tuple[bool, int]:
        """See RegistryBackend."""
        return self.book.set_health(instance_id, state, reason), self.book.revision

    async def expire(self) -> list[str]:
        """See RegistryBackend."""
        return self.book.expire()

    async def lookup(
        self, name: str, role: str = "", include_unhealthy: bool = False
    ) -> tuple[list[broker_pb2.ServiceInstance], int]:
        """See RegistryBackend."""
        return self.book.lookup(name, role, include_unhealthy), self.book.revision

    async def instances(self) -> tuple[list[broker_pb2.ServiceInstance], int]:
        """See RegistryBackend."""
        return self.book.instances(), self.book.revision

    async def watch(
        self, name: str, from_revision: int, limit: int
    ) -> AsyncGenerator[broker_pb2.ServiceEvent, None]:
        """See RegistryBackend."""
        # Backlog and subscription are taken with no await in between, so no event falls in a gap.
        if from_revision == 0:
            backlog = list(self.book.snapshot_events(name))
            backlog.append(
                broker_pb2.ServiceEvent(type=SNAPSHOT_END, revision=self.book.revision, timestamp=now_ms())
            )
        else:
            backlog = [ev for ev in self.book.events_since(from_revision) if matches(ev.instance, name)]
        q = EventQueue(name, limit)
        self._queues.add(q)
        last = from_revision or self.book.revision
        try:
            for event in backlog:
                yield event
                last = event.revision
            async for event in q.drain(last):
                yield event
        finally:
            self._queues.discard(q)

    def close_watches(self) -> None:
        """See RegistryBackend."""
        for q in list(self._queues):
            q.close()

    async def close(self) -> None:
        """See RegistryBackend."""
        self.close_watches()


def as_backend(registry: Registry | RegistryBackend) -> RegistryBackend:
    """A plain Registry (what callers built before the seam) as LocalRegistry; a backend as is."""
    return LocalRegistry(registry) if isinstance(registry, Registry) else registry


def make_backend(choice: StoreChoice) -> RegistryBackend:
    """``LocalRegistry`` (the default) or ``EtcdRegistry`` for ``store: etcd``."""
    if choice.is_etcd:
        from runtime.services.broker.etcd_registry import EtcdRegistry

        return EtcdRegistry(choice)
    return LocalRegistry(Registry())
