"""The broker's registry as a live stream: ``lab.watch_services(callback)``.

    watch = lab.watch_services(print)                 # a snapshot, then every change
    watch.stop()

Each event reaches the callback as a dict (time, type, service, instance, address, pid, health,
reason, revision) on the watch's own thread: ``ADDED`` (registered, or part of the snapshot),
``UPDATED`` (a health change, registered again), ``REMOVED`` (exit reported by the supervisor,
lease expired, deregistered) and one ``SNAPSHOT_END`` after the snapshot of a watch from revision 0.

Resuming: ``from_revision=R`` replays what changed after R and carries on, with no gap and no
duplicate. The broker keeps a bounded history, and a restarted broker counts revisions from its
own start time: a revision it no longer keeps ends the watch with ``OUT_OF_RANGE``. Retrying the
same request cannot help, so the watch stops, keeps the error in ``.error``, logs a warning and
``wait()`` raises it: a silent gap is the one thing a watcher must never get. Once the watch has
delivered events, a broken stream (the broker restarted) resumes from the last revision seen; if
that one is gone too, the watch starts over from a snapshot (``resyncs`` counts those).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc

from runtime.client import auth
from runtime.errors import ClientError, LabError
from runtime.lab.frames import enum_label, ms_to_time
from runtime.lab.stream_watch import StreamWatch
from runtime.v1 import broker_pb2, broker_pb2_grpc, health_pb2

log = logging.getLogger("runtime.lab.discovery")

WATCH_THREAD_NAME = "lab-service-events"
OUT_OF_RANGE = grpc.StatusCode.OUT_OF_RANGE


def service_event_dict(event: broker_pb2.ServiceEvent) -> dict[str, Any]:
    """One ServiceEvent as a flat dict (a row of a DataFrame built from a list of them).

    Example:
        >>> ev = broker_pb2.ServiceEvent(type=broker_pb2.SERVICE_EVENT_TYPE_REMOVED, revision=7,
        ...     reason="lease expired", instance=broker_pb2.ServiceInstance(instance_id="calculator-1"))
        >>> d = service_event_dict(ev)
        >>> d["type"], d["instance"], d["reason"], d["revision"]
        ('REMOVED', 'calculator-1', 'lease expired', 7)
    """
    inst = event.instance
    return {
        "time": ms_to_time(event.timestamp),
        "type": enum_label(broker_pb2.ServiceEventType, event.type, "SERVICE_EVENT_TYPE_"),
        "service": inst.service_name,
        "instance": inst.instance_id,
        "address": inst.address,
        "pid": inst.pid or None,
        "health": health_pb2.HealthState.Name(inst.health),
        "reason": event.reason,
        "revision": event.revision,
    }


class ServiceWatch(StreamWatch):
    """Calls ``callback(event_dict)`` for every registry event of the broker, from a named thread.

    Args:
        broker_address: returns ``127.0.0.1:PORT`` of the broker (asked again on every reconnect).
        token: the lab's token.
        callback: gets each event as :func:`service_event_dict`; an exception in it is logged and
            counted (``callback_errors``), never the end of the watch.
        service: only instances of this service (lab, gRPC or short name; "" for all).
        from_revision: 0 for a snapshot first; R to replay what came after revision R.

    Attributes:
        revision: the revision of the last event delivered (``from_revision`` before any).
        error: the ``ClientError`` (code ``OUT_OF_RANGE``) that ended the watch, else None.

    Example:
        >>> w = lab.watch_services(print, service="calculator")   # doctest: +SKIP
        >>> w.stop()                                              # doctest: +SKIP
    """

    def __init__(
        self,
        broker_address: Callable[[], str],
        token: str,
        callback: Callable[[dict[str, Any]], object],
        *,
        service: str = "",
        from_revision: int = 0,
    ) -> None:
        if from_revision < 0:
            raise LabError(f"from_revision {from_revision} is negative; use 0 (snapshot) or a revision")
        self.service = service
        self.revision = from_revision
        self.error: ClientError | None = None
        self.resyncs = 0
        self._broker_address = broker_address
        self._token = token
        super().__init__(
            lambda: None,  # _follow opens (and closes) a channel of its own on each connect
            lambda _: None,
            service_event_dict,
            callback,
            WATCH_THREAD_NAME,
        )

    def _follow(self) -> None:
        request = broker_pb2.WatchServicesRequest(service_name=self.service, from_revision=self.revision)
        with auth.insecure_channel(self._broker_address(), token=self._token) as channel:
            call = broker_pb2_grpc.BrokerServiceStub(channel).WatchServices(request)
            self._opened(call)
            # A snapshot's events all carry its revision: only once it is complete may a reconnect
            # resume from there (resuming mid-snapshot would lose the instances not yet sent).
            in_snapshot = request.from_revision == 0
            for event in call:
                self.events += 1
                if event.type == broker_pb2.SERVICE_EVENT_TYPE_SNAPSHOT_END:
                    in_snapshot = False
                if not in_snapshot:
                    self.revision = max(self.revision, event.revision)
                self._deliver(service_event_dict(event))

    def _may_retry(self, err: grpc.RpcError) -> bool:
        """Only OUT_OF_RANGE needs a decision: carry on from a snapshot, or end the watch."""
        if err.code() != OUT_OF_RANGE:  # type: ignore[attr-defined]
            return True
        details = err.details()  # type: ignore[attr-defined]
        if self.events == 0:
            # The caller's own from_revision is gone: say so and stop, never skip silently.
            self.error = ClientError(
                f"watching the broker from revision {self.revision}: {details}", "OUT_OF_RANGE"
            )
            log.warning("%s", self.error)
            return False
        log.warning(
            "service watch cannot resume from revision %d (%s); starting over from a snapshot",
            self.revision,
            details,
        )
        self.revision = 0
        self.resyncs += 1
        return True

    def wait(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the watch to end; raise the error that ended it, if any.

        Raises:
            ClientError: code ``OUT_OF_RANGE``: the broker no longer keeps ``from_revision``
                (watch again from 0 for a fresh snapshot).
        """
        self._thread.join(timeout_s)
        if self.error is not None:
            raise self.error

    def __repr__(self) -> str:
        state = "running" if self.running else ("failed: OUT_OF_RANGE" if self.error else "stopped")
        return f"<ServiceWatch {self.service or 'all services'} {state}, {self.events} events, revision {self.revision}>"
