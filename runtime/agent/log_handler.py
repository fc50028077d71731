"""Ships a Python process's `logging` records to the logger service.

The agent calls exactly these:

    handler = install(identity)    # adds the handler to the root logger; returns it
    ...
    uninstall(handler, timeout_s=2.0)   # flushes what it can, removes it

The handler never blocks the caller: records become LogEntry objects (level mapped, ``extra``
fields kept as metadata, correlation id stamped from ``runtime.client.correlation``) and go to a
``LogShipper`` (bounded buffer, batches, replay after logger restarts, drops counted and reported).
A process without a broker address (the broker itself) writes JSON lines on stderr instead; the
supervisor captures them and forwards them with their level and correlation id intact.

In a notebook kernel there is no agent: ``install_for_client("notebook", broker_address)`` ships
the records of the "calculator.client" logger under the service name "notebook".
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Sequence

from runtime.client import correlation
from runtime.client.jsonlog import format_line
from runtime.client.logship import LogShipper
from runtime.identity import Identity
from runtime.v1 import logger_pb2

# Attributes every LogRecord has; anything else came in through ``extra=`` and is metadata.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
CLIENT_LOGGERS = ("calculator.client",)
FLUSH_S = 1.0  # flush()/close() wait at most this long for the logger's acks
_client_handlers: dict[tuple[str, str, str], ShippingHandler] = {}
_client_lock = threading.Lock()


def level_of(levelno: int) -> int:
    """The LogLevel of a Python logging level number."""
    if levelno >= logging.CRITICAL:
        return logger_pb2.FATAL
    if levelno >= logging.ERROR:
        return logger_pb2.ERROR
    if levelno >= logging.WARNING:
        return logger_pb2.WARN
    if levelno >= logging.INFO:
        return logger_pb2.INFO
    if levelno >= logging.DEBUG:
        return logger_pb2.DEBUG
    return logger_pb2.TRACE


def metadata_of(record: logging.LogRecord) -> dict[str, str]:
    """The record's ``extra`` fields as strings (a dict value is spread into its keys)."""
    meta = {"logger": record.name}
    extra = record.__dict__.keys() - _STANDARD_ATTRS  # one set difference in C: usually empty
    if not extra:
        return meta
    for key, value in record.__dict__.items():
        if key not in extra or key.startswith("_"):
            continue
        if isinstance(value, dict):
            for k, v in value.items():
                meta[str(k)] = v if isinstance(v, str) else json.dumps(v, default=str)
        else:
            meta[key] = value if isinstance(value, str) else json.dumps(value, default=str)
    return meta


def message_of(record: logging.LogRecord) -> str:
    """The formatted message, with the traceback when the record carries one."""
    try:
        text = record.getMessage()
    except Exception as exc:  # noqa: BLE001 - a bad format string must not lose the record
        text = f"{record.msg!r} (could not format with {record.args!r}: {exc})"
    if record.exc_info:
        text += "\n" + logging.Formatter().formatException(record.exc_info)
    return text


def entry_from_record(record: logging.LogRecord, service: str, instance_id: str) -> logger_pb2.LogEntry:
    """The LogEntry for one logging record, stamped with the current correlation id."""
    return logger_pb2.LogEntry(
        service_name=service, instance_id=instance_id, level=level_of(record.levelno),  # type: ignore[arg-type]
        message=message_of(record), timestamp=int(record.created * 1000),
        timestamp_us=int(record.created * 1_000_000),
        correlation_id=getattr(record, "correlation_id", "") or correlation.current(),
        source="logging", metadata=metadata_of(record),
    )  # fmt: skip


class _EntryMaker:
    """``entry_from_record`` for one service instance, cheaper for the common record.

    A record without ``extra`` fields (``log.info("%s = %s", text, result)``, the calculator's
    line per call) has the same service, instance, source and metadata as every other record of
    its logger: those are copied from a template per logger name (CopyFrom: 1.7 us) instead of
    building the metadata map anew (a LogEntry with a map from keywords: 4.9 us).
    """

    _MAX_TEMPLATES = 256  # logger names; more (unlikely) are built the plain way

    def __init__(self, service: str, instance_id: str) -> None:
        self.service = service
        self.instance_id = instance_id
        self._templates: dict[str, logger_pb2.LogEntry] = {}

    def __call__(self, record: logging.LogRecord) -> logger_pb2.LogEntry:
        if record.__dict__.keys() - _STANDARD_ATTRS:
            return entry_from_record(record, self.service, self.instance_id)  # extra fields: metadata
        template = self._templates.get(record.name)
        if template is None:
            if len(self._templates) >= self._MAX_TEMPLATES:
                return entry_from_record(record, self.service, self.instance_id)
            template = logger_pb2.LogEntry(
                service_name=self.service, instance_id=self.instance_id, source="logging",
                metadata={"logger": record.name},
            )  # fmt: skip
            self._templates[record.name] = template
        entry = logger_pb2.LogEntry()
        entry.CopyFrom(template)
        entry.level = level_of(record.levelno)  # type: ignore[assignment]
        entry.message = message_of(record)
        created = record.created
        entry.timestamp = int(created * 1000)
        entry.timestamp_us = int(created * 1_000_000)
        entry.correlation_id = getattr(record, "correlation_id", "") or correlation.current()
        return entry


class ShippingHandler(logging.Handler):
    """A logging.Handler that queues records on a LogShipper; emit() never waits on the network."""

    def __init__(self, shipper: LogShipper, service: str, instance_id: str) -> None:
        super().__init__()
        self.shipper = shipper
        self.service = service
        self.instance_id = instance_id
        self._entry = _EntryMaker(service, instance_id)

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record (records logged by the shipper's own thread are skipped: no loops)."""
        if threading.current_thread() is self.shipper.thread:
            return
        try:
            self.shipper.emit(self._entry(record))
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)

    def flush(self) -> None:
        """Wait briefly for what was queued to be acknowledged."""
        self.shipper.flush(timeout_s=FLUSH_S)

    def close(self) -> None:
        """Flush and stop the shipper (a second call returns at once)."""
        self.shipper.close(timeout_s=FLUSH_S)
        super().close()


class JsonStderrHandler(logging.Handler):
    """Writes each record as a jsonlog line on stderr (for processes without a broker address)."""

    def __init__(self, identity: Identity) -> None:
        super().__init__()
        self.identity = identity

    def emit(self, record: logging.LogRecord) -> None:
        """Write one JSON line (level, message, correlation id, extra fields)."""
        try:
            meta = metadata_of(record)
            line = format_line(
                message_of(record), level=level_of(record.levelno),
                correlation_id=getattr(record, "correlation_id", "") or correlation.current(),
                service=self.identity.service_name, instance=self.identity.instance_id,
                ts_ms=None, **meta,
            )  # fmt: skip
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001
            self.handleError(record)


def lean_records() -> None:
    """Stop ``logging`` from filling record fields no lab handler reads (caller, thread, process).

    The Logging HOWTO's "Optimization" switches: finding the caller walks the stack on every
    record, and the thread and process fields cost lookups too; our handlers read none of them
    (message, level, time, ``extra`` fields). ``log.info`` with a handler: 12.2 -> 5.9 us (timeit).
    Only for a service process, whose logging the agent owns; never in a notebook kernel.
    """
    logging._srcfile = None  # type: ignore[attr-defined]  # the documented switch has no public name
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def install(identity: Identity) -> logging.Handler:
    """Attach a shipping handler (or JSON-on-stderr without a broker) to the root logger."""
    lean_records()  # one log line per call: its cost is the service's per-call cost
    handler: logging.Handler
    if identity.broker_address:
        shipper = LogShipper(identity.broker_address, name=identity.instance_id)
        handler = ShippingHandler(shipper, identity.service_name, identity.instance_id)
    else:
        handler = JsonStderrHandler(identity)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler


def uninstall(handler: logging.Handler, timeout_s: float = 2.0) -> None:
    """Flush (up to ``timeout_s``) and detach the handler."""
    logging.getLogger().removeHandler(handler)
    if isinstance(handler, ShippingHandler):
        handler.shipper.close(timeout_s)
    handler.close()


def install_for_client(
    service_name: str,
    broker_address: str,
    logger_names: Sequence[str] = CLIENT_LOGGERS,
    *,
    token: str | None = None,
) -> logging.Handler:
    """Ship the records of ``logger_names`` (in a notebook kernel) under ``service_name``.

    Idempotent: calling it again (a re-run cell) returns the handler already attached.
    ``token`` is the lab's (the Lab passes its own; default ``$LAB_TOKEN``, else ``$LAB_DIR/token``).

    Example:
        >>> install_for_client("notebook", lab.broker_address)   # doctest: +SKIP
    """
    key = (service_name, broker_address, ",".join(logger_names))
    with _client_lock:
        handler = _client_handlers.get(key)
        if handler is not None and handler.shipper.thread.is_alive():
            return handler
        shipper = LogShipper(broker_address, name=service_name, token=token)
        handler = ShippingHandler(shipper, service_name, service_name)
        for name in logger_names:
            lg = logging.getLogger(name)
            lg.addHandler(handler)
            if lg.level > logging.INFO or lg.level == logging.NOTSET:
                lg.setLevel(logging.INFO)
        _client_handlers[key] = handler
        return handler


def uninstall_for_client(handler: logging.Handler, timeout_s: float = 2.0) -> None:
    """Detach a handler made by install_for_client from every logger it was attached to."""
    with _client_lock:
        for key, h in list(_client_handlers.items()):
            if h is handler:
                del _client_handlers[key]
                for name in key[2].split(","):
                    logging.getLogger(name).removeHandler(handler)
    if isinstance(handler, ShippingHandler):
        handler.shipper.close(timeout_s)
