"""One chart for "load -> DEGRADED -> HEALTHY": a load test's latency above each instance's health.

Chapter 05 slows the calculators under a light load and shows both sides on one time axis: the
latency the load generator saw (one point per second of ``LoadTest.frame``) and the health state
every instance reported (from ``lab.health.history()``), as coloured bands. The same periods the
chart draws are what the self-check asserts on, so the learner and the assert see one thing.

    from widgets.load_health import load_health_figure, state_sequence, window_segments
    segments = window_segments(lab.health.history("calculator"), start, end)
    load_health_figure(test.frame, segments, spans={"fault": (f0, f1)}).show()
    state_sequence(segments, "calculator-1")    # e.g. ['HEALTHY', 'DEGRADED', 'HEALTHY']

Presentation only: it reads frames, never a process.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from widgets.health_view import SEGMENT_COLUMNS, STATE_COLORS, state_segments

# The health rule's latency threshold (runtime/agent: p99 of the handler time over 5 s).
DEGRADED_P99_MS = 250.0
LATENCY_LINES = (("p50_ms", "p50", "#2e7d32"), ("p99_ms", "p99", "#c62828"))
SPAN_COLOR = "rgba(120, 120, 120, 0.12)"
BAND_WIDTH = 18


def window_segments(history: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The state periods of every instance within ``[start, end]``, clipped to that window.

    A period that began before ``start`` (the state the instance was in when the window opened)
    is kept with its start moved to ``start``; periods that ended before it or began after
    ``end`` are left out. Columns: instance, state, start, end, reason (as ``state_segments``).

    Example:
        >>> t = pd.Timestamp("2026-01-01", tz="UTC")
        >>> s = lambda x: t + pd.Timedelta(seconds=x)
        >>> h = pd.DataFrame({"time": [s(0), s(5), s(9)], "instance": ["c-1"] * 3,
        ...     "old_state": ["STARTING", "HEALTHY", "DEGRADED"],
        ...     "new_state": ["HEALTHY", "DEGRADED", "HEALTHY"], "reason": ["", "slow", "ok"]})
        >>> list(window_segments(h, s(2), s(12)).state)
        ['HEALTHY', 'DEGRADED', 'HEALTHY']
    """
    segments = state_segments(history, now=end)
    inside = segments[(segments.end > start) & (segments.start <= end)].copy()
    inside["start"] = inside.start.where(inside.start > start, start)
    inside["end"] = inside.end.where(inside.end < end, end)
    return inside.reset_index(drop=True)[SEGMENT_COLUMNS]


def state_sequence(segments: pd.DataFrame, instance: str) -> list[str]:
    """The states ``instance`` went through, in order, repeats merged.

    >>> segs = pd.DataFrame({"instance": ["c-1"] * 3, "state": ["HEALTHY", "HEALTHY", "DEGRADED"],
    ...                      "start": [1, 2, 3]})
    >>> state_sequence(segs, "c-1")
    ['HEALTHY', 'DEGRADED']
    """
    states = list(segments[segments.instance == instance].sort_values("start").state)
    return [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]


def contains_run(sequence: list[str], run: list[str]) -> bool:
    """Whether ``run`` appears in ``sequence`` as consecutive items.

    >>> contains_run(["STARTING", "HEALTHY", "DEGRADED", "HEALTHY"], ["HEALTHY", "DEGRADED", "HEALTHY"])
    True
    >>> contains_run(["HEALTHY", "DEGRADED"], ["HEALTHY", "DEGRADED", "HEALTHY"])
    False
    """
    n = len(run)
    return any(sequence[i : i + n] == run for i in range(len(sequence) - n + 1))


def load_health_figure(
    frame: pd.DataFrame,
    segments: pd.DataFrame,
    spans: dict[str, tuple[pd.Timestamp, pd.Timestamp]] | None = None,
    title: str = "Latency under load, and each instance's health",
) -> go.Figure:
    """p50/p99 per second of a load test (top) above one health band per instance (bottom).

    Args:
        frame: ``LoadTest.frame`` (its ``time`` column is the x axis).
        segments: state periods, e.g. from :func:`window_segments`; each is a band coloured by
            state, with a marker and the reason (on hover) where a new state began.
        spans: named time ranges shaded on both rows (e.g. the fault, the load).
        title: the chart's title.
    """
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        row_heights=[0.62, 0.38],
        subplot_titles=("latency the load generator saw (ms)", "health per instance"),
    )
    for column, name, color in LATENCY_LINES:
        fig.add_trace(
            go.Scatter(x=list(frame.time), y=list(frame[column]), name=name, mode="lines+markers",
                       line=dict(color=color)),
            1, 1,
        )  # fmt: skip
    fig.add_hline(
        y=DEGRADED_P99_MS, line=dict(color="#f9a825", dash="dash"), row=1, col=1,
        annotation_text=f"{DEGRADED_P99_MS:g} ms: the health rule's p99 limit (timed inside the server)", annotation_position="top left",
    )  # fmt: skip
    shown: set[str] = set()
    for seg in segments.sort_values(["instance", "start"]).itertuples():
        state = str(seg.state)
        color = STATE_COLORS.get(state, "#000000")
        fig.add_trace(
            go.Scatter(
                x=[seg.start, seg.end], y=[seg.instance, seg.instance], mode="lines",
                line=dict(color=color, width=BAND_WIDTH), name=state, legendgroup=state,
                showlegend=state not in shown, hoverinfo="skip",
            ),
            2, 1,
        )  # fmt: skip
        fig.add_trace(
            go.Scatter(
                x=[seg.start], y=[seg.instance], mode="markers", marker=dict(color=color, size=9,
                line=dict(color="#000000", width=1)), legendgroup=state, showlegend=False,
                hovertext=[f"{seg.instance} {state}: {seg.reason}"], hoverinfo="text+x",
            ),
            2, 1,
        )  # fmt: skip
        shown.add(state)
    for k, (name, (begin, end)) in enumerate((spans or {}).items()):
        for row in (1, 2):
            fig.add_vrect(x0=begin, x1=end, fillcolor=SPAN_COLOR, line_width=0, row=row, col=1)
        fig.add_annotation(
            x=begin, y=1.0, yref="paper", yshift=14 * k, text=f"{name} ->", showarrow=False,
            xanchor="left", yanchor="bottom", font=dict(size=11, color="#555555"),
        )  # fmt: skip
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(autorange="reversed", title="", row=2, col=1)
    fig.update_layout(title=title, height=480, margin=dict(t=80, b=40), legend=dict(orientation="h", y=-0.12))
    return fig
