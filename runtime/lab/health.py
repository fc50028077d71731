"""Health as tables and callbacks: the ``lab.health*`` methods and the functions behind them.

The functions take a (sync) gRPC channel to the health service, so they work with or without a
``Lab``; the ``HealthViews`` mixin gives ``Lab`` thin wrappers over them.

    lab.health()                       # service, instance, state, message, since
    lab.health_history("calculator")   # time, service, instance, old_state, new_state, reason
    watch = lab.watch_health(print)    # HealthChange per event, from a background thread
    watch.stop()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pandas as pd

from runtime.errors import ClientError, LabError, ServiceNotFound
from runtime.identity import HEALTH_GRPC_SERVICE
from runtime.lab.stream_watch import StreamWatch
from runtime.v1 import common_pb2, health_pb2, health_pb2_grpc

RPC_TIMEOUT_S = 5.0
# After the health service restarts, the watcher reconnects after this pause.
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


def _rpc_error(err: grpc.RpcError, what: str) -> LabError:
    code = err.code()  # type: ignore[attr-defined]
    details = err.details() or str(err)  # type: ignore[attr-defined]
    if code == grpc.StatusCode.NOT_FOUND:
        return ServiceNotFound(details)
    if code == grpc.StatusCode.UNAVAILABLE:
        return LabError(
            f"{what}: the health service does not answer ({details}); is it running? see lab.status()"
        )
    return ClientError(f"{what}: {details}", code.name)


def health_frame(channel: Any) -> pd.DataFrame:
    """Current state of every instance the health service knows, one row each."""
    stub = health_pb2_grpc.HealthServiceStub(channel)
    try:
        reply = stub.ListHealth(common_pb2.Empty(), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as err:
        raise _rpc_error(err, "reading health states") from err
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
    req = health_pb2.HealthHistoryRequest(service_name=service or "", instance_id=instance or "", limit=limit)
    try:
        reply = stub.GetHealthHistory(req, timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as err:
        raise _rpc_error(err, "reading the health history") from err
    return history_frame(list(reply.events))


def check_health(channel: Any, service: str, instance: str | None = None) -> health_pb2.HealthStatus:
    """CheckHealth: one instance's state, or the worst state of a service."""
    stub = health_pb2_grpc.HealthServiceStub(channel)
    try:
        return stub.CheckHealth(
            health_pb2.ServiceKey(service_name=service, instance_id=instance or ""), timeout=RPC_TIMEOUT_S
        )
    except grpc.RpcError as err:
        raise _rpc_error(err, f"checking the health of {service!r}") from err


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


class HealthViews:
    """The health part of ``Lab``: relies on ``self._channel(grpc_service)`` from the core Lab."""

    def _channel(self, grpc_service: str) -> Any:  # provided by Lab
        raise NotImplementedError

    def health(self) -> pd.DataFrame:
        """Current health of every instance: service, instance, state, message, since.

        Example:
            >>> lab.health().query("state != 'HEALTHY'")   # doctest: +SKIP
        """
        return health_frame(self._channel(HEALTH_GRPC_SERVICE))

    def health_history(self, service: str | None = None, instance: str | None = None) -> pd.DataFrame:
        """Health transitions, oldest first: time, service, instance, old_state, new_state, reason.

        Example:
            >>> lab.health_history("calculator").tail()   # doctest: +SKIP
        """
        return health_history_frame(self._channel(HEALTH_GRPC_SERVICE), service, instance)

    def check_health(self, service: str, instance: str | None = None) -> health_pb2.HealthStatus:
        """The state of one instance, or the worst state among a service's instances."""
        return check_health(self._channel(HEALTH_GRPC_SERVICE), service, instance)

    def watch_health(self, callback: Callable[[HealthChange], object]) -> HealthWatch:
        """Call ``callback(change)`` from a background thread for every health event; ``.stop()`` ends it.

        Example:
            >>> seen = []
            >>> watch = lab.watch_health(seen.append)   # doctest: +SKIP
            >>> watch.stop()                            # doctest: +SKIP
        """
        return HealthWatch(lambda: self._channel(HEALTH_GRPC_SERVICE), callback)
