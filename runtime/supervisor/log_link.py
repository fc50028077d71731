"""The supervisor's line to the logger: every child's output and every lifecycle decision.

Lines captured before the logger can be found (the broker is not ready yet) wait in an
``OutputTap`` (bounded); once the broker is READY a ``LogShipper`` takes over, looks the logger
up through the broker, and buffers and replays across logger restarts. Lifecycle events become
entries of service "supervisor", so ``lab.logs()`` tells the whole story of a crash:
"calculator-1 EXITED: killed by SIGKILL", "RESTART_SCHEDULED ...", "READY ...".
"""

from __future__ import annotations

from collections import deque

from runtime.client.logship import LogShipper
from runtime.supervisor.lifecycle import BROKER_SERVICE
from runtime.supervisor.output import OutputTap
from runtime.v1 import logger_pb2, supervisor_pb2

SERVICE_NAME = "supervisor"
CLOSE_TIMEOUT_S = 1.0
PENDING_EVENTS = 1000  # events kept until the broker (and so the logger) can be found
_WARN_KINDS = {
    supervisor_pb2.PROCESS_EVENT_KIND_EXITED,
    supervisor_pb2.PROCESS_EVENT_KIND_START_FAILED,
    supervisor_pb2.PROCESS_EVENT_KIND_SIGNALED,
}
_ERROR_KINDS = {supervisor_pb2.PROCESS_EVENT_KIND_FATAL}


class LogLink:
    """Forwards output lines and process events to the logger once the broker is ready."""

    def __init__(self) -> None:
        self.tap = OutputTap()
        self.shipper: LogShipper | None = None
        self._pending: deque[supervisor_pb2.ProcessEvent] = deque(maxlen=PENDING_EVENTS)

    def on_event(self, event: supervisor_pb2.ProcessEvent, broker_address: str) -> None:
        """Event listener: attach the shipper when the broker is READY; log every event."""
        if self.shipper is None:
            is_broker_ready = (
                event.service == BROKER_SERVICE and event.kind == supervisor_pb2.PROCESS_EVENT_KIND_READY
            )
            if not (is_broker_ready and broker_address):
                self._pending.append(event)
                return
            self.shipper = LogShipper(broker_address, name=SERVICE_NAME)
            self.tap.attach(self.shipper.on_output)
            while self._pending:
                self.shipper.emit(entry_from_event(self._pending.popleft()))
        self.shipper.emit(entry_from_event(event))

    def close(self) -> None:
        """Flush what is queued (bounded) and stop the shipper."""
        if self.shipper is not None:
            self.shipper.close(CLOSE_TIMEOUT_S)


def entry_from_event(event: supervisor_pb2.ProcessEvent) -> logger_pb2.LogEntry:
    """A lifecycle decision as a log entry of service "supervisor"."""
    if event.kind in _ERROR_KINDS:
        level = logger_pb2.ERROR
    elif event.kind in _WARN_KINDS:
        level = logger_pb2.WARN
    else:
        level = logger_pb2.INFO
    return logger_pb2.LogEntry(
        service_name=SERVICE_NAME,
        instance_id=SERVICE_NAME,
        level=level,
        message=_event_text(event),
        timestamp=event.timestamp,
        timestamp_us=event.timestamp_us,
        source="supervisor",
        metadata={"service": event.service, "instance": event.instance_id, "pid": str(event.pid)},
    )


def _event_text(event: supervisor_pb2.ProcessEvent) -> str:
    kind = supervisor_pb2.ProcessEventKind.Name(event.kind).removeprefix("PROCESS_EVENT_KIND_")
    who = event.instance_id or "lab"
    text = f"{who} {kind}: {event.reason}" if event.reason else f"{who} {kind}"
    return f"{text} ({event.rule})" if event.rule else text
