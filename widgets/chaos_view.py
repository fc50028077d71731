"""Chaos panel: an instance picker, three buttons and a live latency chart (presentation only).

The buttons call the Lab's public chaos part (``lab.chaos.inject``, ``lab.chaos.clear``); the
chart is fed by a ``LatencyProbe``, a named background thread that makes a probe call a few times
per second, like any client would. Nothing here touches processes.

The probe call is a parameter, not an import: widgets sit on the runtime's API and know no demo
application. For the calculator, the notebook passes ``CalculatorLab(lab).latency_probe()`` (one
``Add(1, 2)`` through the broker); any ``widgets.sources.ProbeCall`` works.

    from calculator.lab import CalculatorLab
    from widgets.chaos_view import ChaosPanel
    panel = ChaosPanel(lab, probe=CalculatorLab(lab).latency_probe())
    panel.show()                            # "Inject 500 ms latency", "Crash", "Clear all"
    panel.instance.value = "calculator-2"   # the buttons aim at one instance ("(all)": every one)
    panel.probe.frame()                     # time, latency_ms, status, served_by
    panel.stop()
"""

from __future__ import annotations

import collections
import html
import threading
import time
from collections.abc import Callable

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go
from IPython.display import display

from runtime.errors import LabError
from widgets.mission_panels import InstancePicker
from widgets.sources import ChaosSource, ProbeCall
from widgets.view_base import MIN_REDRAW_S, PlotlyOutput, ViewBase, bounded

PROBE_INTERVAL_S = 0.1
PROBE_TIMEOUT_S = 2.0
PROBE_SAMPLES = 600  # ~60 s at the default interval
ACTIONS_KEPT = 100  # button results remembered (newest last)
DEFAULT_DELAY_MS = 500
DEFAULT_FAULT_S = 10  # short: a forgotten button press must not slow the next cells for a minute
PROBE_COLUMNS = ["time", "latency_ms", "status", "served_by"]
INSTANCES_EVERY_S = 1.0  # the picker re-reads lab.status() at most this often (on a redraw)


class LatencyProbe:
    """Makes ``call()`` every ``interval_s`` from a named thread; keeps the last samples.

    Args:
        call: one probe request (``ProbeCall``); it returns who answered, or raises a LabError.
            The probe closes it when it stops.

    Example:
        >>> probe = LatencyProbe(CalculatorLab(lab).latency_probe())   # doctest: +SKIP
        >>> probe.frame().tail()                                      # doctest: +SKIP
        >>> probe.stop()                                              # doctest: +SKIP
    """

    def __init__(
        self,
        call: ProbeCall,
        interval_s: float = PROBE_INTERVAL_S,
        on_sample: Callable[[], object] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self.call = call
        self.on_sample = on_sample  # e.g. a view's mark_dirty
        self.samples: collections.deque[tuple[float, float, str, str]] = collections.deque(
            maxlen=PROBE_SAMPLES
        )
        self.new = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-latency-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            status, served = "OK", ""
            try:
                served = self.call()
            except LabError as err:  # ClientError (DEADLINE_EXCEEDED, UNAVAILABLE) or discovery
                status = getattr(err, "code", "") or type(err).__name__
            self.samples.append((time.time(), (time.monotonic() - started) * 1000, status, served))
            self.new.set()
            if self.on_sample is not None:
                self.on_sample()
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def frame(self) -> pd.DataFrame:
        """The kept samples, oldest first."""
        df = pd.DataFrame(list(self.samples), columns=PROBE_COLUMNS)
        df["time"] = pd.to_datetime(df["time"], unit="s", utc=True)
        return df

    def stop(self) -> None:
        """Stop calling; returns once the thread has ended."""
        self._stop.set()
        self._thread.join(timeout=PROBE_TIMEOUT_S + 1)
        self.call.close()

    @property
    def running(self) -> bool:
        """True while the probe thread runs."""
        return self._thread.is_alive()


class ChaosPanel(ViewBase):
    """An instance picker, buttons "Inject 500 ms latency", "Crash", "Clear all", a live latency chart.

    The picker lists the service's current instances (refreshed from ``lab.status()`` while the
    panel runs) and ``(all)``: latency and crash hit the chosen instance, or every instance.

    Args:
        lab: the instances and a chaos part (``ChaosSource``), e.g. the running Lab.
        service: the lab service the buttons act on.
        probe: the call the chart times (``ProbeCall``); ``show()`` starts probing with it and
            ``stop()`` closes it.
    """

    def __init__(
        self,
        lab: ChaosSource,
        service: str = "calculator",
        delay_ms: int = DEFAULT_DELAY_MS,
        fault_s: int = DEFAULT_FAULT_S,
        min_redraw_s: float = MIN_REDRAW_S,
        *,
        probe: ProbeCall,
    ) -> None:
        super().__init__("chaos-panel", min_redraw_s=min_redraw_s)
        self.lab = lab
        self.probe_call = probe
        self.service = service
        self.delay_ms = delay_ms
        self.fault_s = fault_s
        self.buttons = {
            "delay": widgets.Button(description=f"Inject {delay_ms} ms latency", button_style="warning"),
            "crash": widgets.Button(description="Crash", button_style="danger"),
            "clear": widgets.Button(description="Clear all", button_style="success"),
        }
        self.buttons["delay"].layout.width = "200px"
        self.buttons["delay"].on_click(self.guarded(lambda _: self.inject_latency(), "latency"))
        self.buttons["crash"].on_click(self.guarded(lambda _: self.crash(), "crash"))
        self.buttons["clear"].on_click(self.guarded(lambda _: self.clear_all(), "clear"))
        self.picker = InstancePicker("target")
        self.instance = self.picker.dropdown  # "(all)" or one instance of the service
        self._instances_read = 0.0
        self.status = widgets.HTML("<i>ready</i>")
        # A PlotlyOutput, not a FigureWidget: a view rendered later (a reloaded page) shows the
        # current samples, not the empty chart the panel started with (see view_base).
        chart = go.Figure(
            data=[
                go.Scatter(name="latency", mode="lines+markers", marker=dict(size=4)),
                go.Scatter(name="failed", mode="markers", marker=dict(color="#c62828", size=9, symbol="x")),
            ],
            layout=go.Layout(
                title=f"{service}: latency of {probe.label} as a client sees it",
                yaxis=dict(title="ms", rangemode="tozero"),
                height=300,
                margin=dict(t=40, b=30),
            ),
        )
        self.figure = PlotlyOutput(chart, "chaos-latency")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.instance, *self.buttons.values()]),
                self.status,
                self.errors,
                self.figure.widget,
            ]
        )
        self.probe: LatencyProbe | None = None
        self.actions: collections.deque[str] = bounded(ACTIONS_KEPT)

    # -- the buttons (also callable from code) ---------------------------------------------

    def refresh_instances(self) -> None:
        """Re-read the service's instances into the picker (a scale or a reset changes them)."""
        self._instances_read = time.monotonic()
        self.picker.update(self.lab.status(), self.service)

    def _target_text(self) -> str:
        target = self.picker.target
        return target if target is not None else f"every {self.service} instance"

    def inject_latency(self) -> str:
        """Inject ``delay_ms`` into the picked instance (or every one) for ``fault_s`` seconds."""
        target = self.picker.target
        return self._act(
            lambda: self.lab.chaos.inject(
                self.service, "delay", duration_s=self.fault_s, instance=target, delay_ms=self.delay_ms
            ),
            f"+{self.delay_ms} ms on {self._target_text()} for {self.fault_s} s",
        )

    def crash(self) -> str:
        """SIGKILL the picked instance (or every one) through the supervisor, which restarts it."""
        target = self.picker.target
        return self._act(
            lambda: self.lab.chaos.inject(self.service, "crash", instance=target),
            f"{self._target_text()} crashed (SIGKILL by the supervisor); watch it come back",
        )

    def clear_all(self) -> str:
        """Clear every active fault."""
        return self._act(lambda: f"{self.lab.chaos.clear()} cleared", "every fault cleared")

    def _act(self, action: Callable[[], object], text: str) -> str:
        try:
            result = str(action())
            line = f"{time.strftime('%H:%M:%S')} {text} ({result})"
            self.status.value = html.escape(line)
        except LabError as err:
            line = f"{time.strftime('%H:%M:%S')} failed: {err}"
            self.status.value = f"<span style='color:#c62828'>{html.escape(line)}</span>"
        self.actions.append(line)
        return line

    # -- live chart ------------------------------------------------------------------------

    def show(self) -> None:
        """Display the panel (from the notebook's main thread) and start the probe and redraws."""
        self.guarded(self.refresh_instances, "instances")()
        display(self.widget)
        self.probe = LatencyProbe(self.probe_call, on_sample=self.mark_dirty)
        self.start_redraws()

    def stop(self) -> None:
        """Stop the probe and the redraws (the chart keeps its last picture); same as ``close()``."""
        self.close()

    def close(self) -> None:
        """Stop the probe (closing its call) and the redraw thread."""
        if self.probe is not None:
            self.probe.stop()
        super().close()

    def redraw(self) -> None:
        """Repaint the chart from the probe's samples (one batched update); refresh the picker."""
        if time.monotonic() - self._instances_read >= INSTANCES_EVERY_S:
            self.refresh_instances()
        if self.probe is None:
            return
        df = self.probe.frame()
        ok, bad = df[df.status == "OK"], df[df.status != "OK"]
        with self.figure.batch_update():
            line, failed = self.figure.data
            line.x, line.y = list(ok.time), list(ok.latency_ms)
            line.text = list(ok.served_by)
            failed.x, failed.y = list(bad.time), list(bad.latency_ms)
            failed.text = list(bad.status)
        self.figure.push()
