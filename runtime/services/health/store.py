"""The health state of every instance: current state, bounded history, bounded subscribers.

Pure bookkeeping with no I/O, so it can be tested with scripted inputs. It runs on the health
service's event loop thread only; nothing here blocks.

    store = HealthStore()
    snapshot, sub = store.subscribe(wake=event.set)
    store.apply("calculator", "calculator-1", HEALTHY, "serving", source="push")
    sub.drain()   # -> [HealthEvent(old_state=UNKNOWN, new_state=HEALTHY, reason="serving", ...)]

A subscriber that reads too slowly loses its *oldest* queued events, never blocks the others, and
learns how many it lost from ``HealthEvent.dropped`` on the next event it receives.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from runtime.v1 import health_pb2

UNKNOWN = health_pb2.UNKNOWN
STARTING = health_pb2.STARTING
HEALTHY = health_pb2.HEALTHY
DEGRADED = health_pb2.DEGRADED
UNHEALTHY = health_pb2.UNHEALTHY

# Worst first when a whole service is summed up: one UNHEALTHY instance makes the service UNHEALTHY.
SEVERITY: dict[int, int] = {HEALTHY: 0, UNKNOWN: 1, STARTING: 2, DEGRADED: 3, UNHEALTHY: 4}


def as_state(value: int) -> health_pb2.HealthState:
    """An int typed as the proto enum (the generated stubs want the enum type)."""
    return value  # type: ignore[return-value]


def now_ms() -> int:
    """Unix epoch milliseconds."""
    return time.time_ns() // 1_000_000


def state_name(state: int) -> str:
    """``HEALTHY`` for 2; ``STATE_7`` for values the enum does not know."""
    try:
        return health_pb2.HealthState.Name(state)
    except ValueError:
        return f"STATE_{state}"


@dataclass
class InstanceHealth:
    """What the store knows about one instance (keyed by its stable instance id)."""

    service_name: str
    instance_id: str
    history: deque[health_pb2.HealthEvent]
    state: int = UNKNOWN
    message: str = "registered; no report yet"
    since_ms: int = 0
    updated_ms: int = 0
    source: str = ""
    address: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    # A stream pushes this instance's state: probes leave it alone.
    pushing: bool = False
    # Stopped on purpose (final report or supervisor stop): left out of the service's worst state.
    retired: bool = False
    # Liveness probes got no answer (probe.py): UNHEALTHY until they pass again. Meanwhile pushed
    # reports wait in ``held`` (state, message), restored when the hold ends.
    unresponsive: bool = False
    held: tuple[int, str] | None = None

    def status(self) -> health_pb2.HealthStatus:
        """The instance's current state as the proto HealthStatus."""
        return health_pb2.HealthStatus(
            service_name=self.service_name,
            instance_id=self.instance_id,
            state=as_state(self.state),
            message=self.message,
            timestamp=self.updated_ms,
            since=self.since_ms,
            source=self.source,
            address=self.address,
            metadata=self.metadata,
            final=self.retired,
        )


class Subscription:
    """One WatchHealth subscriber's bounded queue; the oldest events go first when it is full."""

    def __init__(self, capacity: int, wake: Callable[[], None] | None = None) -> None:
        self.capacity = max(1, capacity)
        self._queue: deque[health_pb2.HealthEvent] = deque()
        self._wake = wake
        self.dropped_total = 0
        self._dropped_pending = 0

    def offer(self, event: health_pb2.HealthEvent) -> None:
        """Queue an event, dropping the oldest one when the queue is full."""
        if len(self._queue) >= self.capacity:
            self._queue.popleft()
            self.dropped_total += 1
            self._dropped_pending += 1
        self._queue.append(event)
        if self._wake is not None:
            self._wake()

    def drain(self) -> list[health_pb2.HealthEvent]:
        """Take every queued event; the first carries the count of events lost before it."""
        if not self._queue:
            return []
        events = list(self._queue)
        self._queue.clear()
        if self._dropped_pending:
            first = health_pb2.HealthEvent()
            first.CopyFrom(events[0])
            first.dropped = self._dropped_pending
            events[0] = first
            self._dropped_pending = 0
        return events

    def __len__(self) -> int:
        return len(self._queue)


class HealthStore:
    """Current state, per-instance history and subscribers of every instance in the lab."""

    def __init__(
        self,
        *,
        history_per_instance: int = 1000,
        subscriber_queue: int = 1000,
        max_instances: int = 2000,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.history_per_instance = history_per_instance
        self.subscriber_queue = subscriber_queue
        self.max_instances = max_instances
        self._clock = clock
        self._instances: dict[str, InstanceHealth] = {}
        self._subscribers: set[Subscription] = set()
        self._listeners: list[Callable[[health_pb2.HealthEvent], None]] = []

    # -- reading ---------------------------------------------------------------------------

    def get(self, instance_id: str) -> InstanceHealth | None:
        """The record of one instance, or None."""
        return self._instances.get(instance_id)

    def instances(self) -> list[InstanceHealth]:
        """Every known instance, sorted by service then instance id."""
        return sorted(self._instances.values(), key=lambda i: (i.service_name, i.instance_id))

    def service_names(self) -> list[str]:
        """Sorted names of every service with a known instance."""
        return sorted({i.service_name for i in self._instances.values()})

    def service_status(self, service_name: str) -> health_pb2.HealthStatus | None:
        """The worst state among the service's live instances (all of them when all retired)."""
        members = [i for i in self._instances.values() if i.service_name == service_name]
        if not members:
            return None
        live = [i for i in members if not i.retired] or members
        worst = max(live, key=lambda i: (SEVERITY.get(i.state, 1), -i.since_ms))
        status = worst.status()
        status.instance_id = ""
        counts = ", ".join(
            f"{i.instance_id} {state_name(i.state)}" for i in sorted(live, key=lambda i: i.instance_id)
        )
        status.message = f"worst of {len(live)} instance(s): {counts}; {worst.instance_id}: {worst.message}"
        return status

    def history(
        self, service_name: str = "", instance_id: str = "", limit: int = 0
    ) -> list[health_pb2.HealthEvent]:
        """Transitions oldest first, filtered by service and/or instance; ``limit`` keeps the newest."""
        events: list[health_pb2.HealthEvent] = []
        for inst in self._instances.values():
            if service_name and inst.service_name != service_name:
                continue
            if instance_id and inst.instance_id != instance_id:
                continue
            events.extend(inst.history)
        events.sort(key=lambda e: e.timestamp)
        return events[-limit:] if limit > 0 else events

    # -- writing ---------------------------------------------------------------------------

    def ensure(self, service_name: str, instance_id: str, address: str = "") -> InstanceHealth:
        """The record of an instance, created as UNKNOWN (without an event) when new."""
        inst = self._instances.get(instance_id)
        if inst is None:
            self._evict_if_full()
            inst = InstanceHealth(
                service_name=service_name,
                instance_id=instance_id,
                history=deque(maxlen=self.history_per_instance),
                since_ms=self._clock(),
                updated_ms=self._clock(),
            )
            self._instances[instance_id] = inst
        if service_name:
            inst.service_name = service_name
        if address:
            inst.address = address
        return inst

    def apply(
        self,
        service_name: str,
        instance_id: str,
        state: int,
        reason: str,
        *,
        source: str,
        address: str = "",
        metadata: dict[str, str] | None = None,
        note: bool = False,
        retired: bool = False,
    ) -> health_pb2.HealthEvent | None:
        """Record a state; returns the event when it is a transition (or a ``note`` to show).

        A report of the state the instance is already in only refreshes its message; ``note``
        records it in the history anyway (e.g. "restart scheduled at ...", which keeps UNHEALTHY).
        """
        inst = self.ensure(service_name, instance_id, address)
        now = self._clock()
        old = inst.state
        inst.updated_ms = now
        inst.message = reason
        inst.source = source
        inst.retired = retired
        if metadata is not None:
            inst.metadata = dict(metadata)
        if old == state and not note:
            return None
        if old != state:
            inst.state = state
            inst.since_ms = now
        event = health_pb2.HealthEvent(
            service_name=inst.service_name,
            instance_id=instance_id,
            old_state=as_state(old),
            new_state=as_state(state),
            reason=reason,
            timestamp=now,
            source=source,
            address=inst.address,
        )
        inst.history.append(event)
        for sub in self._subscribers:
            sub.offer(event)
        for listener in self._listeners:
            listener(event)
        return event

    # -- subscribers -----------------------------------------------------------------------

    def subscribe(
        self, wake: Callable[[], None] | None = None
    ) -> tuple[list[health_pb2.HealthEvent], Subscription]:
        """A snapshot event per known instance plus a queue of every later event (atomically)."""
        snapshot = [
            health_pb2.HealthEvent(
                service_name=i.service_name,
                instance_id=i.instance_id,
                old_state=as_state(i.state),
                new_state=as_state(i.state),
                reason=i.message,
                timestamp=i.since_ms,
                snapshot=True,
                source=i.source,
                address=i.address,
            )
            for i in self.instances()
        ]
        sub = Subscription(self.subscriber_queue, wake)
        self._subscribers.add(sub)
        return snapshot, sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Forget a subscriber (safe to call twice)."""
        self._subscribers.discard(sub)

    def add_listener(self, listener: Callable[[health_pb2.HealthEvent], None]) -> None:
        """Call ``listener(event)`` synchronously for every event (it must not block)."""
        self._listeners.append(listener)

    @property
    def subscriber_count(self) -> int:
        """How many WatchHealth subscribers are attached."""
        return len(self._subscribers)

    def _evict_if_full(self) -> None:
        # Bounded: past max_instances, forget the retired instance that changed longest ago.
        if len(self._instances) < self.max_instances:
            return
        candidates: Iterable[InstanceHealth] = [i for i in self._instances.values() if i.retired]
        victim = min(candidates or self._instances.values(), key=lambda i: i.updated_ms)
        del self._instances[victim.instance_id]
