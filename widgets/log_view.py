"""Log views: a live tail with filters, and a colored table of log rows (presentation only).

Everything here reads the Lab's public log part (``lab.logs.tail()``, ``lab.logs()``), typed as
``widgets.sources.LogSource``; nothing touches processes. Tail lines arrive on the tail's thread
and are written with ``Output.append_stdout``.

    from widgets.log_view import LogTail, styled
    tail = LogTail(lab, service="calculator"); tail.show()   # live; change filters in the form
    tail.stop()
    styled(lab.logs(level="WARN"))                            # table with levels colored
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import ipywidgets as widgets
import pandas as pd
from IPython.display import display

from widgets.sources import LogSource, Stoppable

LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]
LEVEL_COLORS = {
    "WARN": "#f9a825",
    "ERROR": "#c62828",
    "FATAL": "#6a1b9a",
    "DEBUG": "#757575",
    "TRACE": "#9e9e9e",
}
MAX_LINES = 200  # lines kept on screen; older ones scroll away
ALL = "(all)"


def format_row(row: dict[str, Any]) -> str:
    """One tail row as a log line: ``12:00:01.234 WARN  calculator-1 req-123 message``."""
    time = pd.Timestamp(row["time"]).strftime("%H:%M:%S.%f")[:-3]
    cid = f" {row['correlation_id']}" if row.get("correlation_id") else ""
    lost = f"  [{row['dropped']} earlier lines dropped: this view was too slow]" if row.get("dropped") else ""
    return f"{time} {row['level']:<5} {row['instance'] or row['service']}{cid} {row['message']}{lost}"


def styled(frame: pd.DataFrame) -> Any:
    """The frame with its level column colored (a pandas Styler for notebook display)."""

    def color(level: str) -> str:
        return f"color: {LEVEL_COLORS[level]}; font-weight: bold" if level in LEVEL_COLORS else ""

    return frame.style.map(color, subset=["level"])  # type: ignore[arg-type]


class LogTail:
    """A filter form (service, minimum level, search) over a live ``lab.logs.tail``.

    Args:
        lab: anything with ``status()`` and a log part with ``tail`` (``LogSource``), e.g. the Lab.
        service, level, search: initial filters.
    """

    def __init__(
        self, lab: LogSource, service: str | None = None, level: str = "INFO", search: str = ""
    ) -> None:
        self.lab = lab
        services = sorted(set(lab.status()["service"])) + ["notebook"]
        self.service = widgets.Dropdown(options=[ALL, *services], value=service or ALL, description="service")
        self.level = widgets.Dropdown(options=LEVELS, value=level, description="min level")
        self.search = widgets.Text(value=search, description="search", continuous_update=False)
        self.status = widgets.HTML()
        self.out = widgets.Output(layout={"height": "300px", "overflow": "auto", "border": "1px solid #ddd"})
        self.box = widgets.VBox(
            [widgets.HBox([self.service, self.level, self.search]), self.status, self.out]
        )
        self._lines: deque[str] = deque(maxlen=MAX_LINES)
        self._shown = 0
        self._lock = threading.Lock()
        self._tail: Stoppable | None = None
        for w in (self.service, self.level, self.search):
            w.observe(lambda _change: self.restart(), names="value")
        self.restart()

    def filters(self) -> dict[str, Any]:
        """The form's filters as ``lab.logs.tail`` keywords."""
        f: dict[str, Any] = {"level": self.level.value}
        if self.service.value != ALL:
            f["service"] = self.service.value
        if self.search.value.strip():
            f["search"] = self.search.value
        return f

    def restart(self) -> None:
        """Stop the current tail and start one with the form's filters."""
        self.stop()
        with self._lock:
            self._lines.clear()
            self._shown = 0
            self.out.outputs = ()
        self._tail = self.lab.logs.tail(self._on_row, **self.filters())
        shown = ", ".join(f"{k}={v!r}" for k, v in self.filters().items())
        self.status.value = f"<i>tailing {shown}</i>"

    def _on_row(self, row: dict[str, Any]) -> None:
        # Runs on the tail's thread: only Output.append_* and plain assignments here.
        line = format_row(row)
        with self._lock:
            self._lines.append(line)
            self._shown += 1
            if self._shown > 2 * MAX_LINES:  # redraw from the bounded buffer instead of growing
                self.out.outputs = ()
                self.out.append_stdout("\n".join(self._lines) + "\n")
                self._shown = len(self._lines)
            else:
                self.out.append_stdout(line + "\n")

    @property
    def lines(self) -> list[str]:
        """The lines currently kept (newest last)."""
        with self._lock:
            return list(self._lines)

    def show(self) -> None:
        """Display the form and the live lines (call from a notebook cell)."""
        display(self.box)

    def stop(self) -> None:
        """End the live tail."""
        if self._tail is not None:
            self._tail.stop()
            self._tail = None
            self.status.value = "<i>stopped</i>"
