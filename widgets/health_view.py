"""Health views: a state-per-instance timeline and a live health board (presentation only).

Everything here reads the Lab's public health part (``lab.health()``, ``lab.health.history()``,
``lab.health.watch()``), typed as ``widgets.sources.HealthSource``; nothing touches processes.

    from widgets.health_view import HealthBoard, timeline_figure
    timeline_figure(lab.health.history()).show()    # one bar per state period, per instance
    board = HealthBoard(lab); board.show(); ...; board.stop()
"""

from __future__ import annotations

import html
from collections import deque

import ipywidgets as widgets
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from IPython.display import display

from runtime.lab.health import HealthChange
from widgets.sources import HealthSource, Stoppable
from widgets.view_base import MIN_REDRAW_S, ViewBase, bounded, stream_output

STATE_COLORS = {
    "HEALTHY": "#2e7d32",
    "DEGRADED": "#f9a825",
    "STARTING": "#90caf9",
    "UNHEALTHY": "#c62828",
    "UNKNOWN": "#9e9e9e",
}
TICK_S = 2.0  # redraw this often with no transition too: the open period grows with the clock
LOG_LINES = 200
SEGMENT_COLUMNS = ["instance", "state", "start", "end", "reason"]


def state_segments(history: pd.DataFrame, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Transitions -> periods: one row per (instance, state) from its start to the next change."""
    now = now or pd.Timestamp.now(tz="UTC")
    rows = []
    for instance, group in history.sort_values("time").groupby("instance", sort=True):
        changes = group[group.old_state != group.new_state]
        times = list(changes.time)
        for i, (_, row) in enumerate(changes.iterrows()):
            end = times[i + 1] if i + 1 < len(times) else now
            rows.append([instance, row.new_state, row.time, end, row.reason])
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)


def timeline_figure(history: pd.DataFrame, title: str = "Health per instance") -> go.Figure:
    """A plotly timeline: one row per instance, colored by state, hover shows the reason."""
    segments = state_segments(history)
    if segments.empty:
        return go.Figure(layout=go.Layout(title=f"{title} (no transitions yet)", height=200))
    fig = px.timeline(
        segments,
        x_start="start",
        x_end="end",
        y="instance",
        color="state",
        color_discrete_map=STATE_COLORS,
        hover_data={"reason": True},
        title=title,
    )
    fig.update_yaxes(autorange="reversed", title="")
    fig.update_layout(height=120 + 28 * segments.instance.nunique(), margin=dict(t=40, b=30))
    return fig


def states_html(health: pd.DataFrame) -> str:
    """The current states as a small colored HTML table."""
    head = "".join(
        f"<th style='padding:2px 8px'>{c}</th>" for c in ("service", "instance", "state", "message")
    )
    rows = []
    for _, r in health.iterrows():
        color = STATE_COLORS.get(r.state, "#000")
        rows.append(
            f"<tr><td style='padding:2px 8px'>{html.escape(r.service)}</td>"
            f"<td style='padding:2px 8px'>{html.escape(r.instance)}</td>"
            f"<td style='padding:2px 8px;color:{color};font-weight:bold'>{r.state}</td>"
            f"<td style='padding:2px 8px'>{html.escape(str(r.message))}</td></tr>"
        )
    return f"<table style='font-family:monospace'><tr>{head}</tr>{''.join(rows)}</table>"


class HealthBoard(ViewBase):
    """Live states, a transition log and the timeline, fed by ``lab.health.watch``.

    Stands on ``ViewBase``: transitions arrive on the watch thread and only mark the view dirty;
    the view's thread redraws at most a few times a second and every ``TICK_S`` so the timeline
    keeps advancing; the transition log keeps the last ``LOG_LINES``.

    Args:
        lab: anything with a health part (``HealthSource``), e.g. the running Lab.
    """

    def __init__(self, lab: HealthSource, min_redraw_s: float = MIN_REDRAW_S) -> None:
        super().__init__("health-board", min_redraw_s=min_redraw_s, tick_s=TICK_S)
        self.lab = lab
        self.table = widgets.HTML()
        self.log = widgets.Output(
            layout=widgets.Layout(max_height="180px", overflow="auto", border="1px solid #ddd")
        )
        self.figure = go.FigureWidget(layout=go.Layout(title="Health per instance", height=260))
        self.widget = widgets.VBox([self.table, self.errors, self.log, self.figure])
        self.lines: deque[str] = bounded(LOG_LINES)
        self._appended = 0  # lines ever appended; the log is rewritten when it moved
        self._drawn = 0
        self._watch: Stoppable | None = None

    def show(self) -> None:
        """Display the board (from the notebook's main thread) and start following the lab."""
        display(self.widget)
        self._watch = self.keep(self.lab.health.watch(self.guarded(self._on_change, "watch")))
        self.start_redraws()

    def stop(self) -> None:
        """Stop following (the widgets keep their last picture); same as ``close()``."""
        self.close()

    def _on_change(self, change: HealthChange) -> None:
        # Called on the watch thread: only note the change; the redraw thread batches.
        if not change.snapshot:
            when = (
                change.time.tz_convert(None).strftime("%H:%M:%S.%f")[:-3] if change.time is not None else ""
            )
            self.lines.append(
                f"{when} {change.instance}: {change.old_state} -> {change.new_state} ({change.reason})"
            )
            self._appended += 1
        self.mark_dirty()

    def redraw(self) -> None:
        """Read states and history once and repaint table, transition log and timeline."""
        self.table.value = states_html(self.lab.health())
        appended = self._appended
        if appended != self._drawn:
            self.log.outputs = (stream_output(list(self.lines)),)
            self._drawn = appended
        fresh = timeline_figure(self.lab.health.history())
        with self.figure.batch_update():
            self.figure.data = ()
            self.figure.add_traces(list(fresh.data))
            self.figure.layout.xaxis = fresh.layout.xaxis
            self.figure.layout.yaxis = fresh.layout.yaxis
            self.figure.layout.barmode = "overlay"
            self.figure.layout.height = fresh.layout.height
