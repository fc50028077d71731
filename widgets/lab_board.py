"""LabBoard: a live control panel for a running lab (process table, kill/restart, CPU and memory).

A view only: it reads and acts through the Lab's public API (``widgets.sources.ProcessSource``).
It stands on ``widgets.view_base.ViewBase``: a named thread refreshes it every ``refresh_s``
(batched plotly updates), errors show in the board, button output goes through
``Output.append_stdout`` (never print from a thread).

    from widgets.lab_board import LabBoard
    board = LabBoard(lab)
    board.show()
    ...
    board.stop()
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from widgets.sources import ProcessSource
from widgets.view_base import ViewBase

REFRESH_S = 1.0
MIN_REFRESH_S = 0.5  # reads the whole status table: twice a second is plenty
WINDOW = 120  # samples kept per instance: two minutes at 1 s
STATE_COLORS = {
    "RUNNING": "#2e7d32",
    "STARTING": "#f9a825",
    "WAITING": "#f9a825",
    "BACKOFF": "#ef6c00",
    "FATAL": "#c62828",
}


class LabBoard(ViewBase):
    """Process table, a kill/restart control and a live RSS chart for one lab.

    Args:
        lab: anything with ``status()``, ``kill()`` and ``restart()`` (``ProcessSource``), e.g. the Lab.
    """

    def __init__(self, lab: ProcessSource, refresh_s: float = REFRESH_S) -> None:
        self.refresh_s = max(refresh_s, MIN_REFRESH_S)
        super().__init__("lab-board", min_redraw_s=self.refresh_s, tick_s=self.refresh_s)
        self.lab = lab
        self.table = widgets.HTML()
        self.instance = widgets.Dropdown(description="instance")
        self.signal = widgets.Dropdown(options=["SIGKILL", "SIGTERM"], value="SIGKILL", description="signal")
        self.kill_button = widgets.Button(description="Send signal", button_style="danger", icon="bolt")
        self.restart_button = widgets.Button(description="Restart", icon="refresh")
        self.log = widgets.Output(
            layout=widgets.Layout(max_height="160px", overflow="auto", border="1px solid #ddd")
        )
        self.figure = go.FigureWidget(
            layout=go.Layout(title="RSS per instance (MB)", height=300, margin=dict(t=40, b=30))
        )
        self._samples: dict[str, deque[tuple[float, float]]] = {}
        self._traces: dict[str, int] = {}  # instance -> index of its trace in figure.data
        self.kill_button.on_click(self.guarded(self._on_kill, "kill"))
        self.restart_button.on_click(self.guarded(self._on_restart, "restart"))
        controls = widgets.HBox([self.instance, self.signal, self.kill_button, self.restart_button])
        self.widget = widgets.VBox([self.table, controls, self.errors, self.log, self.figure])
        self.refresh()

    def stop(self) -> None:
        """Stop refreshing (the widgets stay as they were); same as ``close()``."""
        self.close()

    def redraw(self) -> None:
        """The view base's redraw: one ``refresh()``."""
        self.refresh()

    def refresh(self) -> None:
        """Read the lab once and update table, instance list and chart."""
        status = self.lab.status()
        self.table.value = _html_table(status)
        live = status[status.pid.notna()]  # skipped services have no process to signal
        instances = [i for i, s in zip(live.instance, live.service, strict=True) if s != "broker"]
        if list(self.instance.options) != instances:
            current = self.instance.value
            self.instance.options = instances
            self.instance.value = current if current in instances else (instances[0] if instances else None)
        now = time.time()
        for inst, rss in zip(live.instance, live.rss_mb, strict=True):
            self._samples.setdefault(inst, deque(maxlen=WINDOW)).append((now, float(rss)))
        # Adding a trace is not a property update that batch_update can hold: add new ones first,
        # then change x/y of every trace in one batched message.
        for inst in sorted(set(self._samples) - set(self._traces)):
            self.figure.add_scatter(x=[], y=[], name=inst, mode="lines")
            self._traces[inst] = len(self.figure.data) - 1
        with self.figure.batch_update():
            for inst, samples in self._samples.items():
                trace = self.figure.data[self._traces[inst]]
                trace.x = [time.strftime("%H:%M:%S", time.localtime(t)) for t, _ in samples]
                trace.y = [r for _, r in samples]

    def _on_kill(self, _button: widgets.Button) -> None:
        inst = self.instance.value
        if not inst:
            return
        service = inst.rsplit("-", 1)[0]
        got = self.lab.kill(service, inst, signal=self.signal.value)
        self.log.append_stdout(
            f"{time.strftime('%H:%M:%S')} sent {got['signal']} to {inst} (pid {got['pid']})\n"
        )

    def _on_restart(self, _button: widgets.Button) -> None:
        inst = self.instance.value
        if inst:
            self.lab.restart(inst.rsplit("-", 1)[0], inst)
            self.log.append_stdout(f"{time.strftime('%H:%M:%S')} restarting {inst}\n")


def _html_table(status: Any) -> str:
    cols = ["service", "instance", "pid", "state", "restarts", "port", "uptime_s", "cpu_percent", "rss_mb"]
    head = "".join(f"<th style='padding:2px 8px'>{c}</th>" for c in cols)
    rows = []
    for _, r in status.iterrows():
        cells = []
        for c in cols:
            v = "" if r[c] is None or str(r[c]) in ("<NA>", "nan") else r[c]
            style = f"color:{STATE_COLORS[v]};font-weight:bold" if c == "state" and v in STATE_COLORS else ""
            cells.append(f"<td style='padding:2px 8px;{style}'>{v}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table style='font-family:monospace'><tr>{head}</tr>{''.join(rows)}</table>"
