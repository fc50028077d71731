"""Load views: a live RPS + latency chart of a load test, with start/stop controls (presentation only).

Everything here goes through the Lab's public load part (``lab.load.start()``, the LoadTest
handle), typed as ``widgets.sources.LoadSource``; nothing touches processes.

    from widgets.load_view import LoadView, load_figure
    view = LoadView(lab); view.show()           # controls + live chart; Start runs a test
    view.follow(lab.load.start("calculator", rps=500, duration_s=10))   # or chart a test started in code
    view.stop()                                  # stop following (and the test, if it runs)
    load_figure(test.frame).show()               # a static chart of a finished test
    compare_figure({"open loop": open_test, "closed loop": closed_test})   # two finished tests side by side
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from runtime.lab.load import LoadTest
from widgets.sources import LoadSource
from widgets.view_base import MIN_REDRAW_S, ViewBase

LATENCY_SERIES = (("p50_ms", "p50", "#2e7d32"), ("p95_ms", "p95", "#f9a825"), ("p99_ms", "p99", "#c62828"))
METHODS = ("Add", "Subtract", "Multiply", "Divide")


def load_figure(frame: pd.DataFrame, title: str = "Load test") -> go.Figure:
    """RPS (sent per second, failures as bars) above p50/p95/p99 latency, one point per second."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("requests/s", "latency (ms)"),
    )
    x = list(frame.second)
    fig.add_trace(go.Scatter(x=x, y=list(frame.rps), name="sent/s", line=dict(color="#1565c0")), 1, 1)
    failed = frame.failed.diff().fillna(frame.failed).clip(lower=0) if len(frame) else frame.failed
    fig.add_trace(go.Bar(x=x, y=list(failed), name="failed/s", marker_color="#c62828", opacity=0.6), 1, 1)
    for column, name, color in LATENCY_SERIES:
        fig.add_trace(go.Scatter(x=x, y=list(frame[column]), name=name, line=dict(color=color)), 2, 1)
    fig.update_xaxes(title_text="second of the test", row=2, col=1)
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(title=title, height=440, margin=dict(t=60, b=40), legend=dict(orientation="h", y=-0.15))
    return fig


LOOP_COLORS = ("#1565c0", "#ef6c00", "#6a1b9a", "#2e7d32")


def compare_figure(
    tests: dict[str, LoadTest],
    title: str = "Same freeze, two load tests",
    freeze: tuple[float, float] | None = None,
) -> go.Figure:
    """Finished tests side by side: requests sent per second (left), the p99 of the whole run (right).

    Made for chapter 13's open loop vs closed loop: the closed loop's sends drop while the target
    stalls, and its whole-run p99 (the number a report shows) stays low. ``freeze`` (start, end)
    in seconds of the test shades the stall on the left.
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.62, 0.38],
        horizontal_spacing=0.12,
        subplot_titles=("requests sent per second", "p99 of the whole run (ms)"),
    )
    for (name, test), color in zip(tests.items(), LOOP_COLORS, strict=False):
        frame = test.frame
        sent = frame.sent.diff().fillna(frame.sent) if len(frame) else frame.sent
        fig.add_trace(
            go.Scatter(
                x=list(frame.second), y=list(sent), name=name, mode="lines+markers", line=dict(color=color)
            ),
            1,
            1,
        )
        p99 = test.summary().latency_p99_ms
        fig.add_trace(
            go.Bar(x=[name], y=[p99], text=[f"{p99:.0f} ms"], marker_color=color, showlegend=False), 1, 2
        )
    if freeze is not None:
        fig.add_vrect(
            x0=freeze[0], x1=freeze[1], fillcolor="#9e9e9e", opacity=0.2, line_width=0, row=1, col=1
        )
        fig.add_annotation(
            x=(freeze[0] + freeze[1]) / 2, y=1, yref="y domain", text="freeze", showarrow=False, row=1, col=1
        )
    fig.update_xaxes(title_text="second of the test", row=1, col=1)
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(title=title, height=380, margin=dict(t=70, b=40), legend=dict(orientation="h", y=-0.2))
    return fig


def summary_html(summary: pd.Series) -> str:
    """A LoadSummary as one line of HTML."""
    errors = ", ".join(f"{k}: {v}" for k, v in summary.error_counts.items()) or "none"
    return (
        f"<b>{html.escape(str(summary.test_id))}</b>: {summary.total_requests} sent, "
        f"{summary.total_failed} failed ({html.escape(errors)}), {summary.achieved_rps:.0f} rps achieved, "
        f"p50 {summary.latency_p50_ms:.1f} ms, p99 {summary.latency_p99_ms:.1f} ms, "
        f"p99.9 {summary.latency_p999_ms:.1f} ms"
    )


class LoadView(ViewBase):
    """Start/stop controls and a live chart fed by a LoadTest's per-second metrics.

    Args:
        lab: anything with a load part (``LoadSource``), e.g. the running Lab.
        target: the service the Start button loads.
    """

    def __init__(
        self, lab: LoadSource, target: str = "CalculatorService", min_redraw_s: float = MIN_REDRAW_S
    ) -> None:
        super().__init__("load-view", min_redraw_s=min_redraw_s)
        self.lab = lab
        self.target = widgets.Text(value=target, description="target")
        self.method = widgets.Dropdown(options=METHODS, value="Add", description="method")
        self.rps = widgets.IntSlider(value=200, min=10, max=3000, step=10, description="rps")
        self.duration = widgets.IntSlider(value=10, min=1, max=120, description="seconds")
        self.start_button = widgets.Button(description="Start", button_style="success")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", disabled=True)
        self.status = widgets.HTML()
        self.figure = go.FigureWidget(
            load_figure(pd.DataFrame(columns=["second", "rps", "failed", "p50_ms", "p95_ms", "p99_ms"]))
        )
        self.start_button.on_click(self.guarded(lambda _: self.start(), "start"))
        self.stop_button.on_click(self.guarded(lambda _: self.stop_test(), "stop"))
        controls = widgets.HBox([self.target, self.method])
        sliders = widgets.HBox([self.rps, self.duration, self.start_button, self.stop_button])
        self.widget = widgets.VBox([controls, sliders, self.status, self.errors, self.figure])
        self.test: LoadTest | None = None

    def start(self) -> LoadTest | None:
        """Start a test with the controls' values and follow it; returns the LoadTest (None: refused)."""
        try:
            test = self.lab.load.start(
                self.target.value,
                rps=self.rps.value,
                duration_s=self.duration.value,
                method=self.method.value,
            )
        except Exception as err:  # noqa: BLE001 - show the lab's message (it says what to change)
            self.status.value = f"<span style='color:#c62828'>{html.escape(str(err))}</span>"
            return None
        self.follow(test)
        return test

    def follow(self, test: LoadTest) -> None:
        """Chart ``test`` (a LoadTest) from now on."""
        self.test = test
        self.start_button.disabled = True
        self.stop_button.disabled = False
        self.status.value = f"running {html.escape(repr(test))}"
        test.on_metrics(lambda _row: self.mark_dirty())
        self.start_redraws()

    def stop_test(self) -> None:
        """Stop the running test early (its summary shows under the controls)."""
        if self.test is not None and not self.test.done:
            self.status.value = summary_html(self.test.stop())
        self.mark_dirty()

    def stop(self) -> None:
        """Stop the running test (if any) and the redraw thread; same as ``close()``."""
        self.close()

    def close(self) -> None:
        """Stop the running test (if any) and the redraw thread; the chart keeps its last picture."""
        self.stop_test()
        super().close()

    def redraw(self) -> None:
        """Repaint the chart from the test's frame (one batched update); show the summary at the end."""
        test = self.test
        if test is None:
            return
        fresh = load_figure(test.frame)
        with self.figure.batch_update():
            for trace, new in zip(self.figure.data, fresh.data, strict=True):
                trace.x = new.x
                trace.y = new.y
        if test.done and not self.stop_button.disabled:
            self.start_button.disabled = False
            self.stop_button.disabled = True
            if test.error is not None:
                self.status.value = f"<span style='color:#c62828'>{html.escape(str(test.error))}</span>"
            else:
                self.status.value = summary_html(test.summary(timeout_s=5))
