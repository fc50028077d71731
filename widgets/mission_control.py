"""MissionControl: the whole lab in one view - tiles, health timeline, latency chart, chaos, logs, reset.

Driven by the lab's streams, not by tight polling: the supervisor's event watch, the health
watch and a log tail only note what happened (bounded buffers) and mark the view dirty; the view
base (``widgets.view_base``) redraws at most 4 times a second and once a second without news, so
the timeline and the countdowns keep moving. A redraw reads ``lab.status()`` (pid, CPU, RSS),
the active faults and the running load tests once.

The latency chart shows the load generator's p99 and requests/s while a test runs, and a light
probe's latency always (a ``ProbeCall`` passed in, e.g. ``CalculatorLab(lab).latency_probe()``:
widgets never import the demo), with markers for kills, faults and health changes.

    from calculator.lab import CalculatorLab
    from widgets.mission_control import MissionControl
    mc = MissionControl(lab, probe=CalculatorLab(lab).latency_probe())
    mc.show()
    mc.kill("calculator-1"); mc.inject("delay"); mc.reset()     # what the buttons do
    mc.close()
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from runtime.lab.health import HealthChange
from widgets.chaos_view import LatencyProbe
from widgets.mission_charts import (
    Change,
    Marker,
    latency_widget,
    paint_latency,
    paint_timeline,
    timeline_segments,
    timeline_widget,
)
from widgets.mission_panels import ChaosControls, LogFollow
from widgets.mission_tiles import Tiles
from widgets.sources import MissionSource, ProbeCall, Stoppable
from widgets.view_base import ViewBase, bounded

WINDOW_S = 120.0  # what the timeline and the latency chart show
TICK_S = 1.0  # redraw at least this often: the clock moves, countdowns count
PROBE_INTERVAL_S = 0.5  # light: two calls a second
CHANGES_KEPT = 2000
MARKERS_KEPT = 500
LOAD_ROWS_KEPT = 600
LOAD_CHECK_S = 1.0
ACTIONS_KEPT = 50
KILL_EVENTS = ("EXITED", "FATAL", "SIGNALED")


class MissionControl(ViewBase):
    """Every instance of a lab at a glance, with its controls.

    Args:
        lab: anything ``MissionSource`` describes, e.g. the running Lab.
        probe: one client call the chart times when no load test runs (optional).
        window_s: how much history the timeline and the chart show.
    """

    def __init__(
        self,
        lab: MissionSource,
        probe: ProbeCall | None = None,
        window_s: float = WINDOW_S,
        tick_s: float = TICK_S,
    ) -> None:
        super().__init__("mission-control", tick_s=tick_s)
        self.lab = lab
        self.window_s = window_s
        self.probe_call = probe
        self.probe: LatencyProbe | None = None
        self.health: dict[str, tuple[str, str]] = {}  # instance -> (state, reason)
        self.changes: Any = bounded(CHANGES_KEPT)  # Change tuples
        self.markers: Any = bounded(MARKERS_KEPT)  # Marker tuples
        self.load_rows: Any = bounded(LOAD_ROWS_KEPT)  # (t, rps, p99)
        self.actions: Any = bounded(ACTIONS_KEPT)
        self.frozen: set[str] = set()
        self.services: set[str] = set()
        self._last_load_check = 0.0
        self._reset_thread: threading.Thread | None = None
        self._tail: Stoppable | None = None

        self.header = widgets.HTML()
        self.status_line = widgets.HTML("<i>ready</i>")
        self.reset_button = widgets.Button(description="Reset lab", button_style="info", icon="undo")
        self.reset_button.add_class("mc-reset")
        self.reset_button.on_click(lambda _b: self.act("reset", self.reset_in_background))
        self.tiles = Tiles(self.act, self)
        self.timeline = timeline_widget()
        label = probe.label if probe is not None else "no probe"
        self.chart = latency_widget(f"Latency: probe {label}, load p99 and requests/s")
        self.chaos = ChaosControls(self.act, self)
        self.logs = LogFollow(self.act, self.retail)
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.header, self.reset_button]),
                self.status_line,
                self.errors,
                self.tiles.box,
                self.timeline.widget,
                self.chart.widget,
                widgets.HBox([self.chaos.box, self.logs.box]),
            ]
        )
        self.widget.add_class("mission-control")

    # -- lifecycle -------------------------------------------------------------------------

    def show(self) -> None:
        """Display (from the notebook's main thread) and start following the lab."""
        super().show()
        self.follow()

    def follow(self) -> None:
        """Subscribe to the lab's streams and start the probe; idempotent (also without display)."""
        if self.probe is None and self.probe_call is not None:
            self.probe = LatencyProbe(self.probe_call, interval_s=PROBE_INTERVAL_S, on_sample=self.mark_dirty)
        if not self._watches_started:
            self._watches_started = True
            self.keep(self.lab.health.watch(self.guarded(self._on_health, "health watch")))
            self.keep(self.lab.watch_events(self.guarded(self._on_event, "event watch"), replay=0))
            self.retail()
        self.start_redraws()

    _watches_started = False

    def close(self) -> None:
        """Stop the probe, the streams and the redraws; the widgets keep their last picture."""
        if self.probe is not None:
            self.probe.stop()
        super().close()

    # -- what the streams bring (their threads) --------------------------------------------

    def _on_health(self, change: HealthChange) -> None:
        t = change.time.timestamp() if change.time is not None else time.time()
        self.health[change.instance] = (change.new_state, change.reason)
        if not change.snapshot or not any(c[1] == change.instance for c in self.changes):
            self.changes.append((t, change.instance, change.new_state, change.reason))
        if not change.snapshot and change.old_state != change.new_state:
            self.markers.append((t, "health", f"{change.instance}: {change.old_state} -> {change.new_state}"))
        self.mark_dirty()

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("event") in KILL_EVENTS and event.get("instance"):
            t = event["time"].timestamp() if event.get("time") is not None else time.time()
            self.markers.append((t, "kill", f"{event['instance']}: {event.get('reason', '')}"))
        self.mark_dirty()

    def _on_log(self, row: dict[str, Any]) -> None:
        self.logs.on_row(row)
        self.mark_dirty()

    def retail(self) -> None:
        """(Re)start the log tail with the log panel's filters."""
        self.release(self._tail)
        self._tail = None
        self.logs.clear()
        self._tail = self.keep(
            self.lab.logs.tail(self.guarded(self._on_log, "log tail"), **self.logs.filters())
        )
        self.mark_dirty()

    # -- the buttons (also callable from code and tests) -----------------------------------

    def act(self, what: str, fn: Callable[[], object]) -> None:
        """Run one action for a button; its result or error shows in the status line."""
        try:
            result = fn()
        except Exception as err:  # noqa: BLE001 - the learner sees why, in the view
            self.report_error(err, what)
            return
        line = f"{time.strftime('%H:%M:%S')} {what}" + (f": {result}" if result not in (None, "") else "")
        self.actions.append(line)
        self.status_line.value = html.escape(line)
        self.mark_dirty()

    def kill(self, instance: str) -> dict[str, Any]:
        """SIGKILL one instance (the supervisor restarts it)."""
        self.frozen.discard(instance)
        return self.lab.kill(_service(instance), instance)

    def restart(self, instance: str) -> str:
        """Stop and start one instance gracefully."""
        self.frozen.discard(instance)
        self.lab.restart(_service(instance), instance)
        return "restarted"

    def toggle_freeze(self, instance: str) -> str:
        """SIGSTOP a running instance (it stops answering), or SIGCONT one this view froze."""
        if instance in self.frozen:
            self.lab.kill(_service(instance), instance, signal="SIGCONT")
            self.frozen.discard(instance)
            return "thawed"
        self.lab.kill(_service(instance), instance, signal="SIGSTOP")
        self.frozen.add(instance)
        return "frozen (SIGSTOP): it stops answering until thawed"

    def start_again(self, instance: str) -> str:
        """Start a FATAL (or stopped) instance again; its failure history is forgotten."""
        self.lab.start(_service(instance), instance)
        return "starting"

    def inject(self, kind: str) -> str:
        """Inject a fault of ``kind`` with the chaos panel's parameters; returns its id."""
        fid = self.lab.chaos.inject(self.chaos.service.value, kind, **self.chaos.fault_args(kind))
        self.markers.append((time.time(), "fault", f"{kind} on {self.chaos.service.value} ({fid})"))
        return fid

    def clear_faults(self, fault_id: str | None = None) -> str:
        """Clear one fault, or every fault."""
        return f"{self.lab.chaos.clear(fault_id)} cleared"

    def reset(self) -> Any:
        """``lab.reset()``: back to the lab file's state (waits for it)."""
        self.frozen.clear()
        report = self.lab.reset()
        self.status_line.value = html.escape(f"{time.strftime('%H:%M:%S')} {report}")
        self.mark_dirty()
        return report

    def reset_in_background(self) -> str:
        """What the Reset button does: reset on a named thread, so the page stays live meanwhile."""
        if self._reset_thread is not None and self._reset_thread.is_alive():
            return "a reset is running already"
        self._reset_thread = threading.Thread(
            target=self.guarded(self.reset, "reset"), name="mission-control-reset", daemon=True
        )
        self._reset_thread.start()
        return "resetting the lab..."

    def follow_id(self, correlation_id: str) -> None:
        """Show only one request's log lines (what clicking an id does)."""
        self.logs.follow(correlation_id)

    # -- drawing ---------------------------------------------------------------------------

    def redraw(self) -> None:
        """One repaint of every part from the buffers and one read of status, faults and load."""
        now = time.time()
        status = self.lab.status()
        self.services = set(status.service)
        self.tiles.update(status, self.health, self.frozen)
        faults = self.lab.chaos.faults() if "chaos" in self.services else None
        self.chaos.update(status, faults, now)
        if "loadgen" in self.services and now - self._last_load_check >= LOAD_CHECK_S:
            self._last_load_check = now
            tests = self.lab.load.tests()
            if not tests.empty:
                self.load_rows.append((now, float(tests.current_rps.sum()), float(tests.p99_ms.max())))
        changes: list[Change] = list(self.changes)
        current = {i: s for i, (s, _) in self.health.items()}
        paint_timeline(
            self.timeline, timeline_segments(changes, current, now, self.window_s), now, self.window_s
        )
        probe = list(self.probe.samples) if self.probe is not None else []
        markers: list[Marker] = list(self.markers)
        paint_latency(self.chart, probe, list(self.load_rows), markers, now, self.window_s)
        self.logs.update(sorted(self.services))
        colors = self.tiles.colors()
        counts = {c: sum(1 for v in colors.values() if v == c) for c in ("green", "amber", "red", "fatal")}
        self.header.value = (
            f"<b style='font-size:16px'>Mission Control</b> &nbsp; {len(colors)} instances: "
            f"{counts['green']} healthy, {counts['amber']} degraded, {counts['red']} down, "
            f"{counts['fatal']} fatal &nbsp; <span style='color:#757575'>{time.strftime('%H:%M:%S')}</span>"
        )


def _service(instance: str) -> str:
    """``calculator-ts-2`` -> ``calculator-ts``: the lab's instance ids are ``<service>-<n>``."""
    return instance.rsplit("-", 1)[0]
