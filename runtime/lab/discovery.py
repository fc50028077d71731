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
import threading
from collections.abc import Callable
from typing import Any

import grpc

from runtime.client import auth
from runtime.errors import ClientError, LabError
from runtime.lab.frames import enum_label, ms_to_time
from runtime.v1 import broker_pb2, broker_pb2_grpc, health_pb2

log = logging.getLogger("runtime.lab.discovery")

WATCH_THREAD_NAME = "lab-service-events"
RECONNECT_S = 0.2
STOP_TIMEOUT_S = 2.0
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


class ServiceWatch:
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
        self.events = 0
        self.resyncs = 0
        self.callback_errors = 0
        self.connected = threading.Event()
        self._broker_address = broker_address
        self._token = token
        self._callback = callback
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._call: Any = None
        self._thread = threading.Thread(target=self._run, name=WATCH_THREAD_NAME, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with auth.insecure_channel(self._broker_address(), token=self._token) as channel:
                    self._follow(broker_pb2_grpc.BrokerServiceStub(channel))
            except grpc.RpcError as err:
                if err.code() == OUT_OF_RANGE and not self._stop.is_set():  # type: ignore[attr-defined]
                    if not self._out_of_range(err):
                        return
            except Exception as exc:  # noqa: BLE001 - e.g. the broker has no address yet: keep trying
                log.debug("service watch could not connect: %r", exc)
            self.connected.clear()
            if self._stop.wait(RECONNECT_S):
                return

    def _follow(self, stub: broker_pb2_grpc.BrokerServiceStub) -> None:
        request = broker_pb2.WatchServicesRequest(service_name=self.service, from_revision=self.revision)
        call = stub.WatchServices(request)
        with self._lock:
            self._call = call
        if self._stop.is_set():
            call.cancel()
        self.connected.set()
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

    def _out_of_range(self, err: grpc.RpcError) -> bool:
        """Decide after OUT_OF_RANGE; True: carry on (from a snapshot), False: the watch ends."""
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

    def _deliver(self, value: dict[str, Any]) -> None:
        try:
            self._callback(value)
        except Exception:  # a bug in the notebook's callback must not end the watch
            self.callback_errors += 1
            log.exception("service watch callback failed on %s", value)

    def wait(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the watch to end; raise the error that ended it, if any.

        Raises:
            ClientError: code ``OUT_OF_RANGE``: the broker no longer keeps ``from_revision``
                (watch again from 0 for a fresh snapshot).
        """
        self._thread.join(timeout_s)
        if self.error is not None:
            raise self.error

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop watching; returns once the thread has ended (or ``timeout_s`` passed)."""
        self._stop.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()
        self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        """True while the background thread runs."""
        return self._thread.is_alive()

    def __repr__(self) -> str:
        state = "running" if self.running else ("failed: OUT_OF_RANGE" if self.error else "stopped")
        return f"<ServiceWatch {self.service or 'all services'} {state}, {self.events} events, revision {self.revision}>"
