"""MissionControl's two charts: the health timeline and the latency/RPS chart with event markers.

Pure where it can be: ``timeline_segments`` turns health transitions into bars over a moving
window (so a test can feed it a scripted history), the figure builders make charts with a fixed
set of traces, and ``paint_*`` set their x/y in one ``batch_update`` and push the figure.

The charts are ``view_base.PlotlyOutput``s, not FigureWidgets: a FigureWidget's browser view
starts from the figure as it was built and relies on every later delta reaching it; in the Voila
dashboard both charts stayed blank on a loaded machine while the tiles updated. A PlotlyOutput's
widget state is the whole current figure, whenever the page renders it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import plotly.graph_objects as go

from widgets.health_view import STATE_COLORS
from widgets.view_base import PlotlyOutput

TIMELINE_STATES = ("HEALTHY", "DEGRADED", "STARTING", "UNHEALTHY", "UNKNOWN")
MARKER_STYLE = {  # kind -> (colour, symbol)
    "kill": ("#c62828", "x"),
    "fault": ("#6a1b9a", "diamond"),
    "health": ("#f9a825", "circle-open"),
}

# One health transition: (epoch seconds, instance, new state, reason).
Change = tuple[float, str, str, str]
# One chart marker: (epoch seconds, kind, text).
Marker = tuple[float, str, str]


def timeline_segments(
    changes: Iterable[Change], current: dict[str, str], now: float, window_s: float
) -> dict[str, list[tuple[str, float, float]]]:
    """State periods inside ``[now - window_s, now]``: ``{state: [(instance, start, end), ...]}``.

    A period still open ends at ``now``, so the timeline keeps advancing with no new event; one
    that began before the window is cut at its left edge. ``current`` gives the state of an
    instance that had no transition inside what ``changes`` holds.

    >>> segs = timeline_segments([(10.0, "a", "STARTING", ""), (12.0, "a", "HEALTHY", "")], {}, 20.0, 9.0)
    >>> segs["STARTING"], segs["HEALTHY"]
    ([('a', 11.0, 12.0)], [('a', 12.0, 20.0)])
    """
    start = now - window_s
    by_instance: dict[str, list[tuple[float, str]]] = {}
    for t, instance, state, _ in sorted(changes, key=lambda c: c[0]):
        by_instance.setdefault(instance, []).append((t, state))
    for instance, state in current.items():
        by_instance.setdefault(instance, [(start, state)])
    out: dict[str, list[tuple[str, float, float]]] = {s: [] for s in TIMELINE_STATES}
    for instance, points in by_instance.items():
        for i, (t, state) in enumerate(points):
            end = points[i + 1][0] if i + 1 < len(points) else now
            lo, hi = max(t, start), min(end, now)
            if hi > lo:
                out.setdefault(state if state in out else "UNKNOWN", []).append((instance, lo, hi))
    return out


TIMELINE_LINE_PX = 14  # a thick line per period reads as a bar


def timeline_widget(title: str = "Health per instance (last 2 minutes)") -> PlotlyOutput:
    """An empty timeline: one trace per health state, a thick line per period on each instance's row.

    (The periods of one state are one gapped line: a few SVG paths, cheap to draw again every
    second. As a FigureWidget updated live they did not draw; the whole-figure push does.)
    """
    traces = [
        go.Scatter(
            name=state, mode="lines", x=[], y=[], hoverinfo="name+y", connectgaps=False,
            line=dict(color=STATE_COLORS[state], width=TIMELINE_LINE_PX),
        )
        for state in TIMELINE_STATES
    ]  # fmt: skip
    fig = go.Figure(
        data=traces,
        layout=go.Layout(
            title=title, height=260, margin=dict(t=40, b=30, l=110), xaxis=dict(type="date"),
            yaxis=dict(type="category", autorange="reversed"), legend=dict(orientation="h", y=-0.2),
        ),
    )  # fmt: skip
    return PlotlyOutput(fig, "mc-timeline")


def paint_timeline(
    fig: PlotlyOutput, segments: dict[str, list[tuple[str, float, float]]], now: float, window_s: float
) -> None:
    """Set the timeline's traces from ``timeline_segments``, slide its x range to ``now``, push it."""
    with fig.batch_update():
        for trace in fig.data:
            xs: list[str | None] = []
            ys: list[str | None] = []
            for instance, lo, hi in segments.get(trace.name, []):
                xs += [_ms(lo), _ms(hi), None]  # None: a gap before the next period
                ys += [instance, instance, None]
            trace.x, trace.y = xs, ys
        fig.layout.xaxis.range = [_ms(now - window_s), _ms(now)]
        instances = {i for segs in segments.values() for i, _, _ in segs}
        fig.layout.height = max(200, 90 + 22 * len(instances))
    fig.push()


def latency_widget(title: str) -> PlotlyOutput:
    """The live chart: probe latency, load p99, load RPS (right axis), and one marker trace per kind."""
    traces = [
        go.Scatter(name="probe latency (ms)", mode="lines", x=[], y=[], line=dict(color="#1565c0")),
        go.Scatter(
            name="probe failed", mode="markers", x=[], y=[], marker=dict(color="#c62828", size=8, symbol="x")
        ),
        go.Scatter(name="load p99 (ms)", mode="lines", x=[], y=[], line=dict(color="#ef6c00")),
        go.Scatter(
            name="load requests/s",
            mode="lines",
            x=[],
            y=[],
            yaxis="y2",
            line=dict(color="#9e9e9e", dash="dot"),
        ),
    ]
    for kind, (color, symbol) in MARKER_STYLE.items():
        traces.append(
            go.Scatter(name=f"{kind}s", mode="markers", x=[], y=[], text=[], hoverinfo="text+x",
                       marker=dict(color=color, size=12, symbol=symbol, line=dict(width=2, color=color)))
        )  # fmt: skip
    fig = go.Figure(
        data=traces,
        layout=go.Layout(
            title=title, height=320, margin=dict(t=40, b=30), xaxis=dict(type="date"),
            yaxis=dict(title="ms", rangemode="tozero"),
            yaxis2=dict(title="requests/s", overlaying="y", side="right", rangemode="tozero", showgrid=False),
            legend=dict(orientation="h", y=-0.2),
        ),
    )  # fmt: skip
    return PlotlyOutput(fig, "mc-latency")


def paint_latency(
    fig: PlotlyOutput,
    probe: Sequence[tuple[float, float, str, str]],
    load: Sequence[tuple[float, float, float]],
    markers: Sequence[Marker],
    now: float,
    window_s: float,
) -> None:
    """Probe samples ``(t, ms, status, served_by)``, load rows ``(t, rps, p99)`` and markers, in one update."""
    start = now - window_s
    probe = [p for p in probe if p[0] >= start]
    load = [row for row in load if row[0] >= start]
    markers = [m for m in markers if m[0] >= start]
    ok = [p for p in probe if p[2] == "OK"]
    bad = [p for p in probe if p[2] != "OK"]
    top = max([p[1] for p in probe] + [row[2] for row in load] + [1.0])
    with fig.batch_update():
        line, failed, p99, rps, *marks = fig.data
        line.x, line.y = [_ms(p[0]) for p in ok], [p[1] for p in ok]
        failed.x, failed.y = [_ms(p[0]) for p in bad], [p[1] for p in bad]
        p99.x, p99.y = [_ms(r[0]) for r in load], [r[2] for r in load]
        rps.x, rps.y = [_ms(r[0]) for r in load], [r[1] for r in load]
        for trace, kind in zip(marks, MARKER_STYLE, strict=True):
            mine = [m for m in markers if m[1] == kind]
            trace.x = [_ms(m[0]) for m in mine]
            trace.y = [top * 1.05] * len(mine)
            trace.text = [m[2] for m in mine]
        fig.layout.xaxis.range = [_ms(start), _ms(now)]
    fig.push()


def _ms(t: float) -> str:
    # Local wall-clock time as ISO text: plotly.js reads it as a date (raw epoch numbers make
    # unreadable tick labels) and the learner sees the same times as in the log tail.
    return datetime.fromtimestamp(t).isoformat(timespec="milliseconds")
