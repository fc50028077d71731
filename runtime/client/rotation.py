"""The round-robin rotation behind discovery: healthy instances of one service, one channel each.

Shared by the sync DiscoveryChannel (runtime/client/discovery.py) and its asyncio counterpart
(runtime/client/discovery_aio.py); it opens and closes channels through the callables it is given.
Thread-safe: the sync watch thread updates it while callers pick from it.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from runtime.v1 import broker_pb2, health_pb2

# A removed instance's channel stays open this long, so calls already on it can finish.
RETIRE_GRACE_S = 5.0
_HIDDEN = {health_pb2.UNHEALTHY}

C = TypeVar("C")


@dataclass
class Member(Generic[C]):
    """One instance in the rotation and the channel to it (with cached multi-callables)."""

    instance: broker_pb2.ServiceInstance
    channel: C
    callables: dict[tuple[str, str], Any] = field(default_factory=dict)


class Rotation(Generic[C]):
    """Instances to call, in round-robin order, following lookups and watch events.

    Example:
        >>> rot = Rotation(lambda address: address, lambda channel: None)
        >>> rot.replace([broker_pb2.ServiceInstance(instance_id="calc-1", address="127.0.0.1:5000")], 7)
        >>> rot.pick().channel, rot.revision
        ('127.0.0.1:5000', 7)
    """

    def __init__(self, open_channel: Callable[[str], C], close_channel: Callable[[C], None]) -> None:
        self.revision = 0
        self._open = open_channel
        self._close = close_channel
        self._lock = threading.Lock()
        self._members: dict[str, Member[C]] = {}
        self._order: list[str] = []
        self._next = random.randrange(1 << 16)  # one-shot clients must not all pick the same first
        self._retired: list[tuple[float, C]] = []

    def instances(self) -> list[broker_pb2.ServiceInstance]:
        """The instances currently in the rotation."""
        with self._lock:
            return [self._members[i].instance for i in self._order]

    def replace(self, instances: Iterable[broker_pb2.ServiceInstance], revision: int) -> None:
        """Make exactly these (healthy) instances the rotation, as of ``revision``."""
        instances = list(instances)
        with self._lock:
            keep = {i.instance_id for i in instances if i.health not in _HIDDEN}
            for instance_id in [i for i in self._order if i not in keep]:
                self._remove_locked(instance_id)
            for inst in instances:
                if inst.instance_id in keep:
                    self._upsert_locked(inst)
            self.revision = revision

    def apply(self, event: broker_pb2.ServiceEvent) -> None:
        """Follow one watch event: REMOVED or UNHEALTHY leaves at once, ADDED/UPDATED joins."""
        with self._lock:
            inst = event.instance
            if event.type == broker_pb2.SERVICE_EVENT_TYPE_REMOVED or inst.health in _HIDDEN:
                self._remove_locked(inst.instance_id)
            elif event.type in (broker_pb2.SERVICE_EVENT_TYPE_ADDED, broker_pb2.SERVICE_EVENT_TYPE_UPDATED):
                self._upsert_locked(inst)
            self.revision = max(self.revision, event.revision)

    def watch_request(self, service: str) -> tuple[broker_pb2.WatchServicesRequest, WatchFold[C]]:
        """The WatchServices request that resumes from here, and the fold that consumes its events."""
        revision = self.revision
        request = broker_pb2.WatchServicesRequest(service_name=service, from_revision=revision)
        return request, WatchFold(self, snapshot=revision == 0)

    def pick(self, exclude: str = "") -> Member[C] | None:
        """The next instance in round-robin order (skipping ``exclude``), or None when there is none."""
        with self._lock:
            candidates = [i for i in self._order if i != exclude]
            if not candidates:
                return None
            instance_id = candidates[self._next % len(candidates)]
            self._next += 1
            return self._members[instance_id]

    def clear(self) -> list[C]:
        """Empty the rotation; returns every channel (members and retired) for the caller to close."""
        with self._lock:
            channels = [m.channel for m in self._members.values()] + [c for _, c in self._retired]
            self._members.clear()
            self._order.clear()
            self._retired.clear()
        return channels

    def _upsert_locked(self, inst: broker_pb2.ServiceInstance) -> None:
        old = self._members.get(inst.instance_id)
        if old is not None and old.instance.address == inst.address:
            old.instance = inst
            return
        if old is not None:
            self._retire_locked(old.channel)
        else:
            self._order.append(inst.instance_id)
        self._members[inst.instance_id] = Member(inst, self._open(inst.address))

    def _remove_locked(self, instance_id: str) -> None:
        member = self._members.pop(instance_id, None)
        if member is None:
            return
        self._order.remove(instance_id)
        self._retire_locked(member.channel)

    def _retire_locked(self, channel: C) -> None:
        now = time.monotonic()
        self._retired.append((now, channel))
        while self._retired and now - self._retired[0][0] > RETIRE_GRACE_S:
            self._close(self._retired.pop(0)[1])


class WatchFold(Generic[C]):
    """Feeds one WatchServices stream into a Rotation: the snapshot replaces, later events apply."""

    def __init__(self, rotation: Rotation[C], *, snapshot: bool) -> None:
        self.rotation = rotation
        self._snapshot: list[broker_pb2.ServiceInstance] | None = [] if snapshot else None

    def feed(self, event: broker_pb2.ServiceEvent) -> None:
        """Take one event of the stream."""
        if self._snapshot is None:
            self.rotation.apply(event)
        elif event.type == broker_pb2.SERVICE_EVENT_TYPE_SNAPSHOT_END:
            self.rotation.replace(self._snapshot, event.revision)
            self._snapshot = None
        else:
            self._snapshot.append(event.instance)
