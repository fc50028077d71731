"""Health as tables and callbacks: the ``lab.health`` part and the functions behind it.

The functions take a (sync) gRPC channel to the health service, so they work with or without a
``Lab``; :class:`Health` is the part ``Lab`` holds as ``lab.health``. Calling the part gives the
table a learner asks for most, so ``lab.health()`` reads like a question.

    lab.health()                        # service, instance, state, message, since
    lab.health.history("calculator")    # time, service, instance, old_state, new_state, reason
    lab.health.check("calculator")      # HealthStatus: one instance, or the worst of a service
    watch = lab.health.watch(print)     # HealthChange per event, from a background thread
    watch.stop()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from runtime.identity import HEALTH_GRPC_SERVICE
from runtime.lab.connection import Connection, call, message
from runtime.lab.stream_watch import StreamWatch
from runtime.v1 import common_pb2, health_pb2, health_pb2_grpc

SERVICE = "health service"  # how error messages name it
RPC_TIMEOUT_S = 5.0
WATCH_THREAD_NAME = "lab-health-watch"

HEALTH_COLUMNS = ["service", "instance", "state", "message", "since", "source", "address"]
HISTORY_COLUMNS = ["time", "service", "instance", "old_state", "new_state", "reason", "source"]


def state_label(state: int) -> str:
    """``HEALTHY`` for 2 (``STATE_7`` for a value the enum does not know)."""
    try:
        return health_pb2.HealthState.Name(state)
    except ValueError:
        return f"STATE_{state}"


def _time(ms: int) -> pd.Timestamp | None:
    return pd.Timestamp(ms, unit="ms", tz="UTC") if ms else None


@dataclass(frozen=True)
class HealthChange:
    """One HealthEvent as the notebook sees it (a snapshot row or a transition)."""

    time: pd.Timestamp | None
    service: str
    instance: str
    old_state: str
    new_state: str
    reason: str
    source: str
    snapshot: bool
    dropped: int
    address: str

    @classmethod
    def from_event(cls, ev: health_pb2.HealthEvent) -> HealthChange:
        """Convert a proto HealthEvent."""
        return cls(
            time=_time(ev.timestamp),
            service=ev.service_name,
            instance=ev.instance_id,
            old_state=state_label(ev.old_state),
            new_state=state_label(ev.new_state),
            reason=ev.reason,
            source=ev.source,
            snapshot=ev.snapshot,
            dropped=ev.dropped,
            address=ev.address,
        )


def health_frame(channel: Any) -> pd.DataFrame:
    """Current state of every instance the health service knows, one row each."""
    stub = health_pb2_grpc.HealthServiceStub(channel)
    reply = call(stub.ListHealth, common_pb2.Empty(), SERVICE, "reading health states")
    rows = [
        {
            "service": s.service_name,
            "instance": s.instance_id,
            "state": state_label(s.state),
            "message": s.message,
            "since": _time(s.since),
            "source": s.source,
            "address": s.address,
        }
        for s in reply.statuses
    ]
    return pd.DataFrame(rows, columns=HEALTH_COLUMNS)


def history_frame(events: list[health_pb2.HealthEvent]) -> pd.DataFrame:
    """HealthEvents (oldest first) as a table of transitions."""
    rows = [
        {
            "time": _time(e.timestamp),
            "service": e.service_name,
            "instance": e.instance_id,
            "old_state": state_label(e.old_state),
            "new_state": state_label(e.new_state),
            "reason": e.reason,
            "source": e.source,
        }
        for e in events
    ]
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


def health_history_frame(
    channel: Any, service: str | None = None, instance: str | None = None, limit: int = 0
) -> pd.DataFrame:
    """The kept transitions (at least 1000 per instance), oldest first, optionally filtered."""
    stub = health_pb2_grpc.HealthServiceStub(channel)
    req = message(
        health_pb2.HealthHistoryRequest, "reading the health history",
        service_name=service or "", instance_id=instance or "", limit=limit,
    )  # fmt: skip
    reply = call(stub.GetHealthHistory, req, SERVICE, "reading the health history")
    return history_frame(list(reply.events))


def check_health(channel: Any, service: str, instance: str | None = None) -> health_pb2.HealthStatus:
    """CheckHealth: one instance's state, or the worst state of a service."""
    stub = health_pb2_grpc.HealthServiceStub(channel)
    what = f"checking the health of {service!r}"
    key = message(health_pb2.ServiceKey, what, service_name=service, instance_id=instance or "")
    return call(stub.CheckHealth, key, SERVICE, what)


class HealthWatch(StreamWatch):
    """Calls ``callback(HealthChange)`` for every health event, from a named background thread.

    It first delivers a snapshot (``change.snapshot`` is True) of every known instance, then each
    transition; when the health service restarts it reconnects and delivers a fresh snapshot.

    Example:
        >>> watch = HealthWatch(lambda: channel, print)   # doctest: +SKIP
        >>> watch.stop()                                  # doctest: +SKIP
    """

    def __init__(
        self, channel_factory: Callable[[], Any], callback: Callable[[HealthChange], object]
    ) -> None:
        super().__init__(
            channel_factory,
            lambda ch: health_pb2_grpc.HealthServiceStub(ch).WatchHealth(common_pb2.Empty()),
            HealthChange.from_event,
            callback,
            WATCH_THREAD_NAME,
            connected_on_first=True,  # the snapshot has started arriving
        )


class Health:
    """The health part of ``Lab`` (``lab.health``): states, history, checks and a live watch.

    Calling it returns the current states, so ``lab.health()`` is the table of every instance.

    Example:
        >>> lab.health().query("state != 'HEALTHY'")      # doctest: +SKIP
        >>> lab.health.history("calculator").tail()       # doctest: +SKIP
    """

    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    def _channel(self) -> Any:
        return self._conn.channel(HEALTH_GRPC_SERVICE)

    def __call__(self) -> pd.DataFrame:
        """Current health of every instance: service, instance, state, message, since, source, address."""
        return health_frame(self._channel())

    def history(self, service: str | None = None, instance: str | None = None) -> pd.DataFrame:
        """Health transitions, oldest first: time, service, instance, old_state, new_state, reason.

        Example:
            >>> lab.health.history("calculator").tail()   # doctest: +SKIP
        """
        return health_history_frame(self._channel(), service, instance)

    def check(self, service: str, instance: str | None = None) -> health_pb2.HealthStatus:
        """The state of one instance, or the worst state among a service's instances.

        Raises:
            ServiceNotFound: the health service knows no such service or instance (it lists them).
        """
        return check_health(self._channel(), service, instance)

    def watch(self, callback: Callable[[HealthChange], object]) -> HealthWatch:
        """Call ``callback(change)`` from a background thread for every health event; ``.stop()`` ends it.

        Example:
            >>> seen = []
            >>> watch = lab.health.watch(seen.append)   # doctest: +SKIP
            >>> watch.stop()                            # doctest: +SKIP
        """
        return HealthWatch(self._channel, callback)

    def __repr__(self) -> str:
        return "<lab.health: lab.health(), .history(), .check(), .watch()>"
