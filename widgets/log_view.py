"""Log views: a live tail with filters, and a colored table of log rows (presentation only).

Everything here reads the Lab's public log part (``lab.logs.tail()``, ``lab.logs()``), typed as
``widgets.sources.LogSource``; nothing touches processes. Tail lines arrive on the tail's thread
into a bounded buffer; the view base (``widgets.view_base``) redraws them, throttled.

    from widgets.log_view import LogTail, styled
    tail = LogTail(lab, service="calculator"); tail.show()   # live; change filters in the form
    tail.stop()
    styled(lab.logs(level="WARN"))                            # table with levels colored
"""

from __future__ import annotations

from collections import deque
from typing import Any

import ipywidgets as widgets
import pandas as pd

from widgets.sources import LogSource, Stoppable
from widgets.view_base import ViewBase, bounded, stream_output

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


class LogTail(ViewBase):
    """A filter form (service, minimum level, search) over a live ``lab.logs.tail``.

    Args:
        lab: anything with ``status()`` and a log part with ``tail`` (``LogSource``), e.g. the Lab.
        service, level, search: initial filters.
    """

    def __init__(
        self, lab: LogSource, service: str | None = None, level: str = "INFO", search: str = ""
    ) -> None:
        super().__init__("log-tail")
        self.lab = lab
        services = sorted(set(lab.status()["service"])) + ["notebook"]
        self.service = widgets.Dropdown(options=[ALL, *services], value=service or ALL, description="service")
        self.level = widgets.Dropdown(options=LEVELS, value=level, description="min level")
        self.search = widgets.Text(value=search, description="search", continuous_update=False)
        self.status = widgets.HTML()
        self.out = widgets.Output(layout={"height": "300px", "overflow": "auto", "border": "1px solid #ddd"})
        self.box = widgets.VBox(
            [widgets.HBox([self.service, self.level, self.search]), self.status, self.errors, self.out]
        )
        self.widget = self.box
        self._lines: deque[str] = bounded(MAX_LINES)
        self._appended = 0  # lines ever appended; the view rewrites its output when it moved
        self._drawn = 0
        self._tail: Stoppable | None = None
        for w in (self.service, self.level, self.search):
            w.observe(self.guarded(lambda _change: self.restart(), "filter"), names="value")
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
        self.release(self._tail)
        self._tail = None
        self._lines.clear()
        self._appended += 1  # forces the (now empty) output to be redrawn
        self._tail = self.keep(self.lab.logs.tail(self.guarded(self._on_row, "tail"), **self.filters()))
        shown = ", ".join(f"{k}={v!r}" for k, v in self.filters().items())
        self.status.value = f"<i>tailing {shown}</i>"
        self.start_redraws()

    def _on_row(self, row: dict[str, Any]) -> None:
        # Runs on the tail's thread: note the line; the view's thread redraws (batched, bounded).
        self._lines.append(format_row(row))
        self._appended += 1
        self.mark_dirty()

    def redraw(self) -> None:
        """Rewrite the output from the bounded buffer when lines arrived since the last redraw."""
        appended = self._appended
        if appended != self._drawn:
            self.out.outputs = (stream_output(list(self._lines)),)
            self._drawn = appended

    @property
    def lines(self) -> list[str]:
        """The lines currently kept (newest last)."""
        return list(self._lines)

    def stop(self) -> None:
        """End the live tail and the redraws; same as ``close()``."""
        self.close()
        self._tail = None
        self.status.value = "<i>stopped</i>"
