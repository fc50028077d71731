"""The lab's process event log: a bounded history with increasing seq, and live subscribers.

Every lifecycle decision the manager makes is emitted here once; WatchProcessEvents replays the
last N and then streams. A slow subscriber loses its oldest events (bounded queue), never blocks
the manager. Synchronous listeners (the log shipper seam) are called inline and must be quick.

Example:
    >>> log = EventLog()
    >>> ev = log.emit(service="calc", instance_id="calc-1", kind=pb.PROCESS_EVENT_KIND_SPAWNED, pid=7)
    >>> ev.seq
    1
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from runtime.v1 import supervisor_pb2 as pb

HISTORY_SIZE = 5000
SUBSCRIBER_QUEUE_SIZE = 1000

EventListener = Callable[[pb.ProcessEvent], None]

_log = logging.getLogger(__name__)


class Subscription:
    """One live reader of the event log with its own bounded queue (drop oldest)."""

    def __init__(self, log: EventLog, service: str, maxsize: int) -> None:
        self._log = log
        self.service = service
        self.dropped = 0
        self._told = 0  # drops already reported to the reader
        self._closed = False
        self._queue: asyncio.Queue[pb.ProcessEvent | None] = asyncio.Queue(maxsize)

    def offer(self, event: pb.ProcessEvent) -> None:
        """Queue ``event`` (if it matches the filter), dropping the oldest when full."""
        if self.service and event.service != self.service:
            return
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> pb.ProcessEvent | None:
        """The next event (waits); None once the log is closed.

        After a loss the next event carries ``dropped``: how many were lost since the last one.
        """
        if self._closed and self._queue.empty():
            return None
        event = await self._queue.get()
        if event is not None and self.dropped > self._told:
            stamped = pb.ProcessEvent()  # events are shared by every subscriber: stamp a copy
            stamped.CopyFrom(event)
            stamped.dropped = self.dropped - self._told
            self._told = self.dropped
            return stamped
        return event

    def end(self) -> None:
        """Wake the reader with the end of the stream (the lab is shutting down)."""
        self._closed = True
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop receiving events."""
        self._log.unsubscribe(self)


class EventLog:
    """Bounded history of ProcessEvents plus subscribers; the only place events are made."""

    def __init__(self, size: int = HISTORY_SIZE) -> None:
        self._history: deque[pb.ProcessEvent] = deque(maxlen=size)
        self._subs: list[Subscription] = []
        self._listeners: list[EventListener] = []
        self._seq = 0

    def emit(self, *, service: str, instance_id: str, kind: int, **fields: Any) -> pb.ProcessEvent:
        """Record one event (timestamped now) and hand it to every subscriber and listener."""
        now_us = time.time_ns() // 1000
        self._seq += 1
        event = pb.ProcessEvent(
            seq=self._seq,
            timestamp=now_us // 1000,
            timestamp_us=now_us,
            service=service,
            instance_id=instance_id,
            kind=kind,  # type: ignore[arg-type]
            **fields,
        )
        self._history.append(event)
        for sub in list(self._subs):
            sub.offer(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken listener must not stop the supervisor
                _log.exception("process event listener %r failed", listener)
        return event

    def recent(self, count: int, service: str = "") -> list[pb.ProcessEvent]:
        """The last ``count`` events (optionally of one service), oldest first."""
        if count <= 0:
            return []
        items = [e for e in self._history if not service or e.service == service]
        return items[-count:]

    def after(self, after_seq: int, limit: int = 0, service: str = "") -> list[pb.ProcessEvent]:
        """Kept events with seq > ``after_seq`` (optionally of one service), oldest first, at most ``limit``."""
        items = [e for e in self._history if e.seq > after_seq and (not service or e.service == service)]
        return items[:limit] if limit > 0 else items

    def subscribe(self, service: str = "", maxsize: int = SUBSCRIBER_QUEUE_SIZE) -> Subscription:
        """A live subscription; call ``close()`` when done."""
        sub = Subscription(self, service, maxsize)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Remove a subscription (idempotent)."""
        if sub in self._subs:
            self._subs.remove(sub)

    def close(self) -> None:
        """End every live subscription (their streams finish after the queued events)."""
        for sub in list(self._subs):
            sub.end()

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` inline for every future event (keep it fast)."""
        self._listeners.append(listener)
