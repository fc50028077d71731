"""The supervisor's lifecycle decisions as a live stream: ``lab.watch_events(callback)``.

    watch = lab.watch_events(print, replay=5)   # the last 5 decisions, then each new one
    watch.stop()

Each event reaches the callback as a dict with the columns of ``lab.events()`` (time, service,
instance, pid, event, reason, rule, exit_code, next_attempt_at, seq), on the watch's own thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runtime.lab.frames import events_frame
from runtime.lab.stream_watch import StreamWatch
from runtime.v1 import supervisor_pb2, supervisor_pb2_grpc

WATCH_THREAD_NAME = "lab-process-events"
MAX_REPLAY = 1000  # the supervisor keeps a bounded history; asking for more just gets what is kept


def event_dict(event: supervisor_pb2.ProcessEvent) -> dict[str, Any]:
    """One ProcessEvent as the row ``lab.events()`` would show for it."""
    return {str(k): v for k, v in events_frame([event]).iloc[0].items()}


class ProcessEventWatch(StreamWatch):
    """Calls ``callback(event_dict)`` for every lifecycle decision of the supervisor."""

    def __init__(
        self,
        channel_factory: Callable[[], Any],
        callback: Callable[[dict[str, Any]], object],
        *,
        replay: int = 0,
        service: str = "",
    ) -> None:
        request = supervisor_pb2.WatchProcessEventsRequest(replay=min(max(replay, 0), MAX_REPLAY), service=service)
        super().__init__(
            channel_factory,
            lambda ch: supervisor_pb2_grpc.SupervisorServiceStub(ch).WatchProcessEvents(request),
            event_dict,
            callback,
            WATCH_THREAD_NAME,
        )
