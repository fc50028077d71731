"""The broker's registry: instances under leases, stamped with revisions, plus a bounded event history.

Pure bookkeeping, no gRPC and no asyncio: the broker (runtime/services/broker/servicer.py) calls it from its
event loop and turns its exceptions into gRPC statuses. Every change bumps the revision and appends
one ServiceEvent to the history, so a watcher can resume "after revision R" without a gap.

Revisions start at the broker's start time in Unix ms x 1000, so a restarted broker never reuses a
revision a watcher has already seen: resuming from an old revision fails with OUT_OF_RANGE instead
of silently skipping what changed while the broker was down.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from runtime.errors import NAME_MAX, QUOTE_LIMIT, length_problem, name_problem, quote
from runtime.v1 import broker_pb2, health_pb2

DEFAULT_TTL_MS = 5000
ADDRESS_MAX = 100  # "127.0.0.1:PORT", a hostname and port at most
LIST_MAX = 32  # grpc_services, metadata entries: a registration is a name card, not a store


def _address_problem(address: str) -> str | None:
    host, _, port = address.rpartition(":")
    if host and port.isdigit() and 0 < int(port) < 65536:
        return None
    return f"instance.address {quote(address)} is not host:port; give where it serves, e.g. '127.0.0.1:50051'"


def _list_problem(what: str, items: Iterable[str]) -> str | None:
    values = list(items)
    if len(values) > LIST_MAX:
        return f"{what} has {len(values)} entries; at most {LIST_MAX} are allowed"
    return next((p for p in (length_problem(f"an entry of {what}", v, QUOTE_LIMIT) for v in values) if p), None)
MIN_TTL_MS = 100
MAX_TTL_MS = 10 * 60 * 1000
HISTORY_LIMIT = 1000
MAX_INSTANCES = 1000
REVISION_BASE_PER_MS = 1000

ADDED = broker_pb2.SERVICE_EVENT_TYPE_ADDED
REMOVED = broker_pb2.SERVICE_EVENT_TYPE_REMOVED
UPDATED = broker_pb2.SERVICE_EVENT_TYPE_UPDATED
SNAPSHOT_END = broker_pb2.SERVICE_EVENT_TYPE_SNAPSHOT_END

# Lookups hide UNHEALTHY instances only: UNKNOWN, STARTING, HEALTHY and DEGRADED still take calls.
HIDDEN_STATES = frozenset({health_pb2.UNHEALTHY})


class UnknownLease(KeyError):
    """The lease id is not (or no longer) registered: the instance must register again."""


class RegistryFull(Exception):
    """The registry already holds MAX_INSTANCES instances."""


class RevisionNotKept(LookupError):
    """A watch asked to resume from a revision the history no longer holds."""

    def __init__(self, revision: int, oldest: int, current: int) -> None:
        self.revision = revision
        self.oldest = oldest
        self.current = current
        if revision > current:
            text = (
                f"revision {revision} is newer than the broker's current revision {current} "
                "(did the broker restart?); watch again from revision 0"
            )
        else:
            text = f"revision {revision} is no longer kept (oldest kept is {oldest}); watch again from revision 0"
        super().__init__(text)


def now_ms() -> int:
    """Unix epoch milliseconds."""
    return int(time.time() * 1000)


def matches(instance: broker_pb2.ServiceInstance, name: str) -> bool:
    """Whether ``name`` names this instance: lab name, full gRPC name or its short name."""
    if not name or name == instance.service_name:
        return True
    return any(name == full or name == full.rsplit(".", 1)[-1] for full in instance.grpc_services)


@dataclass
class _Entry:
    instance: broker_pb2.ServiceInstance
    lease_id: str
    ttl_ms: int
    expires_at: float | None  # monotonic seconds; None: never (the broker itself)


class Registry:
    """Registered instances by instance id, with revisions and a bounded event history.

    Example:
        >>> reg = Registry()
        >>> lease, ttl, rev = reg.register(broker_pb2.ServiceInstance(
        ...     service_name="calc", instance_id="calc-1", address="127.0.0.1:5000"))
        >>> [i.instance_id for i in reg.lookup("calc")]
        ['calc-1']
    """

    def __init__(
        self,
        *,
        history_limit: int = HISTORY_LIMIT,
        max_instances: int = MAX_INSTANCES,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = now_ms,
    ) -> None:
        self._clock = clock
        self._max_instances = max_instances
        self._wall_ms = wall_ms
        self._entries: dict[str, _Entry] = {}
        self._by_lease: dict[str, str] = {}
        self._history: deque[broker_pb2.ServiceEvent] = deque(maxlen=history_limit)
        self.revision = wall_ms() * REVISION_BASE_PER_MS
        self.listeners: list[Callable[[broker_pb2.ServiceEvent], None]] = []

    # -- changes -----------------------------------------------------------------------------

    def register(
        self, instance: broker_pb2.ServiceInstance, ttl_ms: int = 0, *, permanent: bool = False
    ) -> tuple[str, int, int]:
        """Add or replace ``instance`` under a new lease; returns (lease_id, ttl_ms, revision)."""
        if not instance.service_name:
            raise ValueError(
                "instance.service_name is empty; say which lab service this is, e.g. 'calculator'"
            )
        if not instance.instance_id:
            raise ValueError("instance.instance_id is empty; give a stable id such as 'calculator-1'")
        if not instance.address:
            raise ValueError("instance.address is empty; give where it serves, e.g. '127.0.0.1:50051'")
        problem = (
            name_problem("instance.service_name", instance.service_name)
            or name_problem("instance.instance_id", instance.instance_id)
            or length_problem("instance.address", instance.address, ADDRESS_MAX)
            or _address_problem(instance.address)
            or length_problem("instance.role", instance.role, NAME_MAX)
            or _list_problem("instance.grpc_services", instance.grpc_services)
            or _list_problem("instance.metadata", [*instance.metadata.keys(), *instance.metadata.values()])
        )
        if problem:
            raise ValueError(problem)
        ttl_ms = ttl_ms or DEFAULT_TTL_MS
        if not MIN_TTL_MS <= ttl_ms <= MAX_TTL_MS:
            raise ValueError(
                f"ttl_ms {ttl_ms} is out of range; use {MIN_TTL_MS}..{MAX_TTL_MS} (0 means {DEFAULT_TTL_MS})"
            )
        if instance.instance_id not in self._entries and len(self._entries) >= self._max_instances:
            raise RegistryFull(
                f"the broker already holds {self._max_instances} instances; deregister some "
                "(or stop the lab's extra instances) before registering more"
            )
        old = self._entries.pop(instance.instance_id, None)
        if old is not None:
            self._by_lease.pop(old.lease_id, None)
        inst = broker_pb2.ServiceInstance()
        inst.CopyFrom(instance)
        inst.registered_at = self._wall_ms()
        lease_id = f"lease-{secrets.token_hex(6)}"
        entry = _Entry(inst, lease_id, ttl_ms, None if permanent else self._clock() + ttl_ms / 1000)
        self._stamp_expiry(entry)
        self._entries[inst.instance_id] = entry
        self._by_lease[lease_id] = inst.instance_id
        if old is None:
            self._emit(ADDED, inst, "registered")
        else:
            self._emit(UPDATED, inst, "registered again")
        return lease_id, ttl_ms, self.revision

    def keepalive(self, lease_id: str) -> tuple[int, int]:
        """Renew a lease; returns (ttl_ms, expires_at Unix ms). Raises UnknownLease."""
        entry = self._entry_by_lease(lease_id)
        if entry.expires_at is not None:
            entry.expires_at = self._clock() + entry.ttl_ms / 1000
        self._stamp_expiry(entry)
        return entry.ttl_ms, entry.instance.lease_expires_at

    def drop_lease(self, lease_id: str, reason: str) -> bool:
        """Remove the instance held by ``lease_id`` (if it still is); True when removed."""
        instance_id = self._by_lease.get(lease_id)
        return instance_id is not None and self._remove(instance_id, reason)

    def deregister(self, instance_id: str, lease_id: str = "", reason: str = "") -> bool:
        """Remove an instance; with ``lease_id`` only if it still holds that lease."""
        entry = self._entries.get(instance_id)
        if entry is None or (lease_id and entry.lease_id != lease_id):
            return False
        return self._remove(instance_id, f"deregistered: {reason}" if reason else "deregistered")

    def report_exit(self, instance_id: str, pid: int = 0, reason: str = "") -> bool:
        """The process of ``instance_id`` exited (only that ``pid`` unless 0): remove it now."""
        entry = self._entries.get(instance_id)
        if entry is None or (pid and entry.instance.pid and entry.instance.pid != pid):
            return False
        return self._remove(instance_id, reason or "process exited")

    def set_health(self, instance_id: str, state: health_pb2.HealthState, reason: str = "") -> bool:
        """Record a health state; False when the instance is unknown. Emits UPDATED on a change."""
        entry = self._entries.get(instance_id)
        if entry is None:
            return False
        if entry.instance.health != state:
            entry.instance.health = state
            name = health_pb2.HealthState.Name(state).lower()
            self._emit(UPDATED, entry.instance, f"{name}: {reason}" if reason else name)
        return True

    def expire(self) -> list[str]:
        """Remove every instance whose lease ran out; returns their ids."""
        now = self._clock()
        gone = [i for i, e in self._entries.items() if e.expires_at is not None and e.expires_at <= now]
        for instance_id in gone:
            self._remove(instance_id, "lease expired")
        return gone

    # -- queries -----------------------------------------------------------------------------

    def lookup(
        self, name: str, role: str = "", include_unhealthy: bool = False
    ) -> list[broker_pb2.ServiceInstance]:
        """Instances serving ``name`` (lab, full gRPC or short name), healthy ones unless asked."""
        return [
            e.instance
            for e in self._entries.values()
            if matches(e.instance, name)
            and (not role or e.instance.role == role)
            and (include_unhealthy or e.instance.health not in HIDDEN_STATES)
        ]

    def instances(self) -> list[broker_pb2.ServiceInstance]:
        """Every registered instance, whatever its health."""
        return [e.instance for e in self._entries.values()]

    def events_since(self, revision: int) -> list[broker_pb2.ServiceEvent]:
        """Events after ``revision``; raises RevisionNotKept when some of them are gone."""
        oldest = self._history[0].revision - 1 if self._history else self.revision
        if revision < oldest or revision > self.revision:
            raise RevisionNotKept(revision, oldest, self.revision)
        return [ev for ev in self._history if ev.revision > revision]

    def snapshot_events(self, name: str = "") -> Iterable[broker_pb2.ServiceEvent]:
        """ADDED events for every instance matching ``name`` at the current revision."""
        ts = self._wall_ms()
        for entry in list(self._entries.values()):
            if matches(entry.instance, name):
                yield broker_pb2.ServiceEvent(
                    type=ADDED,
                    instance=entry.instance,
                    revision=self.revision,
                    reason="snapshot",
                    timestamp=ts,
                )

    # -- internals ---------------------------------------------------------------------------

    def _entry_by_lease(self, lease_id: str) -> _Entry:
        instance_id = self._by_lease.get(lease_id)
        if instance_id is None:
            raise UnknownLease(lease_id)
        return self._entries[instance_id]

    def _stamp_expiry(self, entry: _Entry) -> None:
        if entry.expires_at is None:
            entry.instance.lease_expires_at = 0
        else:
            remaining_ms = (entry.expires_at - self._clock()) * 1000
            entry.instance.lease_expires_at = self._wall_ms() + int(remaining_ms)

    def _remove(self, instance_id: str, reason: str) -> bool:
        entry = self._entries.pop(instance_id, None)
        if entry is None:
            return False
        self._by_lease.pop(entry.lease_id, None)
        self._emit(REMOVED, entry.instance, reason)
        return True

    def _emit(
        self, kind: broker_pb2.ServiceEventType, instance: broker_pb2.ServiceInstance, reason: str
    ) -> None:
        self.revision += 1
        event = broker_pb2.ServiceEvent(
            type=kind, instance=instance, revision=self.revision, reason=reason, timestamp=self._wall_ms()
        )
        self._history.append(event)
        for listener in self.listeners:
            listener(event)
