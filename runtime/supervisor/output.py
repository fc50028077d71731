"""Captured stdout/stderr of lab processes: line readers and a bounded ring per instance."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from runtime.v1 import supervisor_pb2 as pb

RING_LINES = 500
# Lines an OutputTap keeps until its sink is attached (the logger is found through the broker,
# which is up only after the first lines were printed).
TAP_BACKLOG = 10_000
DEFAULT_TAIL = 50
# A single line longer than this is cut into pieces rather than breaking the reader.
LINE_LIMIT = 1 << 20

# on_output(service, instance_id, pid, stream, ts_ms, line): the seam for the log shipper.
OutputCallback = Callable[[str, str, int, str, int, str], None]
LineSink = Callable[[str, int, str], None]  # (stream, ts_ms, text)


class OutputRing:
    """The last RING_LINES lines of one instance, across its restarts."""

    def __init__(self, size: int = RING_LINES) -> None:
        self._lines: deque[pb.OutputLine] = deque(maxlen=size)

    def add(self, ts_ms: int, stream: str, text: str, pid: int) -> None:
        """Keep one line."""
        self._lines.append(pb.OutputLine(timestamp=ts_ms, stream=stream, text=text, pid=pid))

    def tail(self, count: int = DEFAULT_TAIL, pid: int = 0) -> list[pb.OutputLine]:
        """The last ``count`` lines, optionally only those of process ``pid``."""
        lines = [ln for ln in self._lines if not pid or ln.pid == pid]
        return lines[-count:] if count > 0 else []

    def last_text(self, count: int, pid: int = 0) -> list[str]:
        """Text of the last ``count`` lines (for error messages)."""
        return [ln.text for ln in self.tail(count, pid)]


class OutputTap:
    """An ``on_output`` callback whose sink is attached later; lines before that are kept (bounded).

    Example (the daemon's wiring of a log shipper once the broker is ready):
        tap = OutputTap()
        daemon = Daemon(config, lab_dir=d, on_output=tap)
        ...
        tap.attach(LogShipper(broker_address=addr, name="supervisor").on_output)
    """

    def __init__(self, backlog: int = TAP_BACKLOG) -> None:
        self._sink: OutputCallback | None = None
        self._pending: deque[tuple[str, str, int, str, int, str]] = deque(maxlen=backlog)
        self.dropped = 0

    def __call__(self, service: str, instance_id: str, pid: int, stream: str, ts_ms: int, line: str) -> None:
        """Forward one line to the sink, or keep it until there is one."""
        if self._sink is not None:
            self._sink(service, instance_id, pid, stream, ts_ms, line)
            return
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        self._pending.append((service, instance_id, pid, stream, ts_ms, line))

    def attach(self, sink: OutputCallback) -> None:
        """Send the kept lines to ``sink`` (oldest first), then every new one."""
        while self._pending:
            sink(*self._pending.popleft())
        self._sink = sink

    @property
    def attached(self) -> bool:
        """A sink is attached."""
        return self._sink is not None


async def read_lines(reader: asyncio.StreamReader, stream: str, sink: LineSink) -> None:
    """Feed every line of ``reader`` to ``sink(stream, ts_ms, text)`` until EOF.

    A line longer than the reader's limit arrives in limit-sized pieces (never dropped).
    """
    after_piece = False
    while True:
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:  # EOF: a last line without newline, or nothing
            if exc.partial:
                _emit(sink, stream, exc.partial)
            return
        except asyncio.LimitOverrunError as exc:
            # The data stays buffered: take the piece, the rest of the line follows.
            raw = await reader.readexactly(max(exc.consumed, 1))
            after_piece = True
            _emit(sink, stream, raw)
            continue
        if after_piece and raw == b"\n":  # the newline that ended a long line, already sent
            after_piece = False
            continue
        after_piece = False
        _emit(sink, stream, raw)


def _emit(sink: LineSink, stream: str, raw: bytes) -> None:
    sink(stream, time.time_ns() // 1_000_000, raw.decode("utf-8", "replace").rstrip("\r\n"))
