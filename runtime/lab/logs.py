"""Logs of the Lab: query, live tail, trace one request, export (the ``lab.logs`` part).

:class:`Logs` is the part ``Lab`` holds as ``lab.logs``; each method is a thin wrapper over a
module function that takes a channel to the logger, so everything here also works (and is
tested) without a Lab. Calling the part queries, so ``lab.logs(...)`` reads like a question.

    lab.logs(service="calculator", level="ERROR")      # only errors from the calculator
    lab.logs(search="division")                         # full-text search
    lab.logs.trace("req-123")                           # one request through client, broker, server
    handle = lab.logs.tail(print, service="calculator") # live; handle.stop() ends it
    lab.logs.export("logs.ndjson")                      # every stored entry as NDJSON
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import grpc
import pandas as pd

from runtime.client.jsonlog import entry_to_line, level_name, level_value
from runtime.errors import ClientError, UsageError, quote
from runtime.identity import LOGGER_GRPC_SERVICE
from runtime.lab.connection import Connection, rpc_error
from runtime.v1 import logger_pb2, logger_pb2_grpc

SERVICE = "logger"  # how error messages name it
COLUMNS = ["time", "service", "instance", "level", "message", "correlation_id"]
QUERY_TIMEOUT_S = 10.0
EXPORT_LIMIT = 100_000
TRACE_LIMIT = 10_000
TAIL_RETRY_S = 0.5
TAIL_START_TIMEOUT_S = 5.0  # tail() returns once the logger confirmed the subscription

Since = float | int | str | dt.datetime | dt.timedelta | pd.Timestamp | None


def _ms(since: Since) -> int:
    """Unix ms of ``since``: epoch seconds, ISO text, datetime, or a timedelta meaning "ago"."""
    if since is None:
        return 0
    if isinstance(since, dt.timedelta):
        return int((time.time() - since.total_seconds()) * 1000)
    if isinstance(since, int | float):
        return int(since * 1000)
    try:
        ts = pd.Timestamp(since)
    except (TypeError, ValueError):
        raise UsageError(
            f"since/until {quote(since)} is no time; use epoch seconds, ISO text such as "
            "'2026-01-01 12:00', a datetime, or a timedelta meaning 'ago'"
        ) from None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.timestamp() * 1000)


def _names(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _level(level: str | int | None) -> int:
    if level is None:
        return 0
    value = level_value(level)
    if value is None:
        raise UsageError(f"unknown log level {quote(level)}; use TRACE, DEBUG, INFO, WARN, ERROR or FATAL")
    return value


def to_frame(entries: Iterable[logger_pb2.LogEntry]) -> pd.DataFrame:
    """A DataFrame (time, service, instance, level, message, correlation_id) of entries."""
    rows = [
        (
            e.timestamp_us or e.timestamp * 1000,
            e.service_name,
            e.instance_id,
            level_name(e.level),
            e.message,
            e.correlation_id,
        )  # fmt: skip
        for e in entries
    ]
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["time"] = pd.to_datetime(df["time"], unit="us", utc=True)
    return df


def query(
    channel: grpc.Channel,
    *,
    service: str | Iterable[str] | None = None,
    level: str | int | None = None,
    search: str | None = None,
    correlation_id: str | None = None,
    since: Since = None,
    until: Since = None,
    instance: str | Iterable[str] | None = None,
    limit: int = 1000,
    newest_first: bool = False,
) -> list[logger_pb2.LogEntry]:
    """Entries from the logger matching the filters, in time order.

    Raises:
        UsageError: an unknown level or a ``since`` that is no time.
        ClientError: the logger refused the query (code ``INVALID_ARGUMENT``, e.g. an empty name).
        ServiceUnavailable: the logger does not answer.
    """
    request = logger_pb2.LogQuery(
        service_names=_names(service), instance_ids=_names(instance), min_level=_level(level),  # type: ignore[arg-type]
        start_time=_ms(since), end_time=_ms(until), search_text=search or "",
        correlation_id=correlation_id or "", limit=limit, newest_first=newest_first, batched=True,
    )  # fmt: skip
    stub = logger_pb2_grpc.LoggerServiceStub(channel)
    found: list[logger_pb2.LogEntry] = []
    try:
        for message in stub.QueryLogs(request, timeout=QUERY_TIMEOUT_S):
            found.extend(message.batch if message.batch else (message,))
    except grpc.RpcError as err:
        raise rpc_error(err, SERVICE, "querying logs") from err
    return found


def logs_frame(channel: grpc.Channel, limit: int = 1000, **filters: Any) -> pd.DataFrame:
    """The newest ``limit`` matching entries as a DataFrame, oldest first."""
    entries = query(channel, limit=limit, newest_first=True, **filters)
    entries.reverse()
    return to_frame(entries)


def trace_frame(channel: grpc.Channel, correlation_id: str, since: Since = None) -> pd.DataFrame:
    """Every entry of one request (optionally only from ``since`` on), ordered by time."""
    if not correlation_id:
        raise UsageError("trace needs a correlation id such as 'req-123'")
    return to_frame(query(channel, correlation_id=correlation_id, since=since, limit=TRACE_LIMIT))


def export_ndjson(channel: grpc.Channel, path: str, **filters: Any) -> int:
    """Write matching entries (up to 100,000, oldest first) as NDJSON; returns how many."""
    entries = query(channel, limit=EXPORT_LIMIT, **filters)
    with open(path, "w", encoding="utf-8") as out:
        for e in entries:
            out.write(entry_to_line(e) + "\n")
    return len(entries)


class Tail:
    """A live tail in a named background thread; ``stop()`` ends it. Reconnects if the logger restarts.

    ``callback`` gets one dict per entry (the DataFrame columns plus ``dropped``); it runs on the
    tail's thread, so widgets should write through ``Output.append_*``.
    """

    def __init__(
        self, channel_factory: Callable[[], grpc.Channel], callback: Callable[[dict], Any], **filters: Any
    ) -> None:
        self._factory = channel_factory
        self._callback = callback
        self._request = logger_pb2.LogFilter(
            service_names=_names(filters.pop("service", None)), instance_ids=_names(filters.pop("instance", None)),
            min_level=_level(filters.pop("level", None)), search_text=filters.pop("search", None) or "",  # type: ignore[arg-type]
            correlation_id=filters.pop("correlation_id", None) or "",
        )  # fmt: skip
        if filters:
            raise UsageError(
                f"tail() got unknown filters {sorted(filters)}; use service, instance, level, search, correlation_id"
            )
        self._stopped = threading.Event()
        self._call: Any = None
        self._lock = threading.Lock()
        self.received = 0
        self.dropped = 0
        self.error = ""
        self.error_code = ""  # the gRPC status name of the last failure
        self.live = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-tail", daemon=True)
        self._thread.start()
        # Return once the logger confirmed the subscription, so entries logged right after
        # tail() returns are not missed (if the logger is down, the tail keeps retrying).
        deadline = time.monotonic() + TAIL_START_TIMEOUT_S
        while not self.live.wait(0.05) and self._thread.is_alive() and time.monotonic() < deadline:
            pass
        if not self._thread.is_alive() and self.error:
            raise ClientError(f"the logger refused this tail: {self.error}", self.error_code)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                stub = logger_pb2_grpc.LoggerServiceStub(self._factory())
                with self._lock:
                    if self._stopped.is_set():
                        return
                    self._call = stub.SubscribeLogs(self._request)
                # Blocks until the logger registered the tail (or refused it).
                if dict(self._call.initial_metadata() or ()).get("x-tail") == "live":
                    self.live.set()
                for e in self._call:
                    self.received += 1
                    self.dropped += e.dropped
                    row = to_frame([e]).iloc[0].to_dict()
                    row["dropped"] = e.dropped
                    self._callback(row)
            except grpc.RpcError as exc:
                self.live.clear()
                if self._stopped.is_set():
                    return
                self.error_code = exc.code().name  # type: ignore[attr-defined]
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:  # type: ignore[attr-defined]
                    self.error = exc.details() or ""  # type: ignore[attr-defined]
                    return
                self.error = str(exc.details())  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - a broken callback ends the tail, visibly
                self.error = f"tail stopped: {exc!r}"
                return
            self._stopped.wait(TAIL_RETRY_S)

    @property
    def running(self) -> bool:
        """Whether the tail still delivers entries."""
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 2.0) -> None:
        """End the tail and wait for its thread."""
        with self._lock:
            self._stopped.set()
            if self._call is not None:
                self._call.cancel()
        self._thread.join(timeout_s)


class Logs:
    """The log part of ``Lab`` (``lab.logs``): query, tail, trace, export.

    Calling it queries, so ``lab.logs(service="calculator")`` is the newest entries as a table.

    Example:
        >>> lab.logs(service="calculator", level="ERROR")   # doctest: +SKIP
        >>> lab.logs.trace("req-123")                       # doctest: +SKIP
    """

    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    def _channel(self) -> grpc.Channel:
        return self._conn.channel(LOGGER_GRPC_SERVICE)  # type: ignore[no-any-return]

    def __call__(
        self,
        service: str | Iterable[str] | None = None,
        level: str | int | None = None,
        search: str | None = None,
        correlation_id: str | None = None,
        since: Since = None,
        limit: int = 1000,
    ) -> pd.DataFrame:
        """The newest log entries as a DataFrame (time, service, instance, level, message, correlation_id).

        Example:
            >>> lab.logs(service="calculator", level="ERROR")   # doctest: +SKIP
        """
        _level(level), _ms(since)  # a mistake is a UsageError before the logger is even looked up
        return logs_frame(
            self._channel(), limit=limit, service=service, level=level,
            search=search, correlation_id=correlation_id, since=since,
        )  # fmt: skip

    def tail(self, callback: Callable[[dict], Any], **filters: Any) -> Tail:
        """Call ``callback(row)`` for every new entry matching ``filters``; returns a handle with ``stop()``.

        Filters: service, instance, level, search, correlation_id (as for ``lab.logs(...)``).
        """
        return Tail(self._channel, callback, **filters)

    def trace(self, correlation_id: str, since: Since = None) -> pd.DataFrame:
        """One request's flow through every service, ordered by time.

        ``since`` (epoch seconds, ISO text, datetime, or a timedelta meaning "ago") leaves out
        older entries with the same id, e.g. from an earlier run of the same notebook.

        Example:
            >>> lab.logs.trace("req-123")[["service", "message"]]   # doctest: +SKIP
        """
        if not correlation_id:
            raise UsageError("trace needs a correlation id such as 'req-123'")
        _ms(since)
        return trace_frame(self._channel(), correlation_id, since)

    def export(self, path: str, **filters: Any) -> int:
        """Write the stored entries as NDJSON (one JSON object a line) to ``path``; returns the count."""
        return export_ndjson(self._channel(), path, **filters)

    def __repr__(self) -> str:
        return "<lab.logs: lab.logs(...), .tail(), .trace(), .export()>"
