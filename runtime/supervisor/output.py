"""Captured stdout/stderr of lab processes: line readers and a bounded ring per instance."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from runtime.v1 import supervisor_pb2 as pb

RING_LINES = 500
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


async def read_lines(reader: asyncio.StreamReader, stream: str, sink: LineSink) -> None:
    """Feed every line of ``reader`` to ``sink(stream, ts_ms, text)`` until EOF."""
    while True:
        try:
            raw = await reader.readline()
        except ValueError:  # longer than LINE_LIMIT: take what is buffered as one line
            raw = await reader.read(LINE_LIMIT)
        if not raw:
            return
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        sink(stream, time.time_ns() // 1_000_000, text)
