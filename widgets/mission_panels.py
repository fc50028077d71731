"""MissionControl's chaos panel and log tail (parts drawn by MissionControl's one redraw thread).

ChaosControls: a button per fault kind with its parameter, a target service and instance (an
``InstancePicker``, which ChaosPanel uses too), a duration; the active faults with a countdown
and a clear button each; clear-all.

LogFollow: a live ``lab.logs.tail`` with service, level, text and correlation-id filters; the
correlation ids seen lately are listed, and clicking one follows that request.
"""

from __future__ import annotations

import html
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import pandas as pd

from widgets.log_view import LEVEL_COLORS, LEVELS, format_row
from widgets.mission_tiles import Act

ALL = "(all)"
# kind -> (parameter keyword, default, widget class); crash takes none.
FAULT_KINDS: dict[str, tuple[str, float, type[widgets.Widget]] | None] = {
    "delay": ("delay_ms", 300, widgets.BoundedIntText),
    "error_inject": ("error_rate", 0.5, widgets.BoundedFloatText),
    "packet_loss": ("packet_loss_pct", 30, widgets.BoundedFloatText),
    "cpu_hog": ("cpu_threads", 1, widgets.BoundedIntText),
    "memory_leak": ("memory_mb", 50, widgets.BoundedIntText),
    "crash": None,
}
PARAM_MAX = {"delay_ms": 10_000, "error_rate": 1, "packet_loss_pct": 100, "cpu_threads": 4, "memory_mb": 512}
DEFAULT_FAULT_S = 10  # short by default: a forgotten fault must not break the next cells
LOG_LINES = 200
LOG_SHOWN = 40
IDS_KEPT = 12


class InstancePicker:
    """A dropdown of one service's current instances and ``(all)``, refreshed from ``lab.status()``.

    MissionControl's chaos panel and ChaosPanel both aim faults and crashes with it.
    """

    def __init__(self, description: str = "instance") -> None:
        self.dropdown = widgets.Dropdown(description=description, options=[ALL], value=ALL)

    def update(self, status: pd.DataFrame, service: str) -> None:
        """The instances ``status`` lists for ``service``; the choice stays while it still exists."""
        instances = [ALL, *sorted(status[status.service == service].instance)]
        if list(self.dropdown.options) != instances:
            current = self.dropdown.value
            self.dropdown.options = instances
            self.dropdown.value = current if current in instances else ALL

    @property
    def target(self) -> str | None:
        """The chosen instance, or None for every instance of the service."""
        value = self.dropdown.value
        return None if value in (ALL, None) else str(value)


class ChaosControls:
    """Fault buttons with parameters, the active faults with countdowns, clear one, clear all."""

    def __init__(self, act: Act, actions: Any) -> None:
        self._act, self._actions = act, actions
        self.service = widgets.Dropdown(description="target", options=["calculator"], value="calculator")
        self.picker = InstancePicker()
        self.instance = self.picker.dropdown
        self.duration = widgets.BoundedIntText(value=DEFAULT_FAULT_S, min=0, max=600, description="seconds")
        self.params: dict[str, widgets.Widget] = {}
        self.buttons: dict[str, widgets.Button] = {}
        rows = []
        for kind, spec in FAULT_KINDS.items():
            button = widgets.Button(description=kind.replace("_", " "), button_style="warning")
            button.add_class(f"mc-fault-{kind}")
            self.buttons[kind] = button
            button.on_click(lambda _b, k=kind: act(f"inject {k}", lambda: actions.inject(k)))
            if spec is None:
                rows.append(widgets.HBox([button]))
                continue
            keyword, default, cls = spec
            field = cls(value=default, min=0, max=PARAM_MAX[keyword], description=keyword)
            self.params[kind] = field
            rows.append(widgets.HBox([button, field]))
        self.clear_all = widgets.Button(description="clear all faults", button_style="success")
        self.clear_all.add_class("mc-clear-all")
        self.clear_all.on_click(lambda _b: act("clear all faults", actions.clear_faults))
        self.active = widgets.VBox()
        self._rows: dict[str, tuple[widgets.HTML, widgets.HBox]] = {}  # fault id -> (text, row)
        self.box = widgets.VBox(
            [
                widgets.HTML("<b>Chaos</b>"),
                widgets.HBox([self.service, self.instance, self.duration]),
                *rows,
                widgets.HTML("<i>active faults</i>"),
                self.active,
                self.clear_all,
            ]
        )

    def fault_args(self, kind: str) -> dict[str, Any]:
        """``lab.chaos.inject`` keywords for ``kind`` from the form."""
        args: dict[str, Any] = {"duration_s": int(self.duration.value)}
        if self.picker.target is not None:
            args["instance"] = self.picker.target
        spec = FAULT_KINDS[kind]
        if spec is not None:
            args[spec[0]] = self.params[kind].value
        return args

    def update(self, status: pd.DataFrame, faults: pd.DataFrame | None, now: float) -> None:
        """Targets from the status table; active faults with their countdowns."""
        services = sorted(set(status.service))
        if list(self.service.options) != services and services:
            current = self.service.value
            self.service.options = services
            self.service.value = current if current in services else services[0]
        self.picker.update(status, self.service.value)
        if faults is None:
            return
        records: list[dict[Any, Any]] = faults.to_dict("records")
        ids = [str(f["fault_id"]) for f in records]
        for gone in set(self._rows) - set(ids):
            text, row = self._rows.pop(gone)
            for w in (*row.children, row):
                w.close()  # a closed widget frees its comm: hours of faults must not pile up
        for f in records:
            fid = str(f["fault_id"])
            if fid not in self._rows:
                clear = widgets.Button(description="clear", layout=widgets.Layout(width="70px"))
                clear.add_class(f"mc-clear-{fid}")
                clear.on_click(
                    lambda _b, fid=fid: self._act(f"clear {fid}", lambda: self._actions.clear_faults(fid))
                )
                text = widgets.HTML()
                self._rows[fid] = (text, widgets.HBox([clear, text]))
            text = self._rows[fid][0]
            expires = f["expires"]
            left = "until cleared"
            if expires is not None and not pd.isna(expires):
                left = f"{max(0.0, expires.timestamp() - now):.0f} s left"
            line = html.escape(f"{f['type']} {f['params']} on {f['service']} {f['instance']}: {left}")
            if text.value != line:
                text.value = line
        children = tuple(self._rows[i][1] for i in ids)
        if tuple(self.active.children) != children:
            self.active.children = children


class LogFollow:
    """Filters (service, level, text, correlation id) over a live tail; recent ids to follow."""

    def __init__(self, act: Act, retail: Callable[[], None]) -> None:
        self.service = widgets.Dropdown(description="service", options=[ALL], value=ALL)
        self.level = widgets.Dropdown(description="min level", options=LEVELS, value="INFO")
        self.search = widgets.Text(description="text", continuous_update=False)
        self.correlation_id = widgets.Text(description="request id", continuous_update=False)
        self.ids = widgets.Select(options=[], rows=4, description="follow id")
        self.ids.add_class("mc-ids")
        self.all_ids = widgets.Button(description="all requests")
        self.out = widgets.HTML()
        self.out.add_class("mc-log")
        self.lines: deque[tuple[str, str]] = deque(maxlen=LOG_LINES)  # (level, line)
        self.recent: OrderedDict[str, float] = OrderedDict()
        self.appended = 0
        self._drawn = -1
        self._updating = False
        for w in (self.service, self.level, self.search, self.correlation_id):
            w.observe(lambda _c: None if self._updating else act("log filter", retail), names="value")
        self.ids.observe(self._on_pick, names="value")
        self.all_ids.on_click(lambda _b: self.follow(""))
        self.box = widgets.VBox(
            [
                widgets.HTML("<b>Logs</b>"),
                widgets.HBox([self.service, self.level]),
                widgets.HBox([self.search, self.correlation_id, self.all_ids]),
                self.ids,
                self.out,
            ]
        )

    def filters(self) -> dict[str, Any]:
        """The form as ``lab.logs.tail`` keywords."""
        f: dict[str, Any] = {"level": self.level.value}
        if self.service.value != ALL:
            f["service"] = self.service.value
        if self.search.value.strip():
            f["search"] = self.search.value.strip()
        if self.correlation_id.value.strip():
            f["correlation_id"] = self.correlation_id.value.strip()
        return f

    def follow(self, correlation_id: str) -> None:
        """Show only the lines of one request ("" shows every request again)."""
        self.correlation_id.value = correlation_id

    def _on_pick(self, change: dict[str, Any]) -> None:
        if not self._updating and change["new"]:
            self.follow(change["new"])

    def on_row(self, row: dict[str, Any]) -> None:
        """A tail row (on the tail's thread): buffer it; the redraw shows it."""
        self.lines.append((str(row.get("level", "")), format_row(row)))
        cid = row.get("correlation_id")
        if cid:
            self.recent[cid] = time.time()
            self.recent.move_to_end(cid)
            while len(self.recent) > IDS_KEPT:
                self.recent.popitem(last=False)
        self.appended += 1

    def clear(self) -> None:
        """Forget the shown lines (a new tail with new filters starts)."""
        self.lines.clear()
        self.appended += 1

    def update(self, services: list[str]) -> None:
        """Service choices, the ids to follow, and the newest lines (only when something changed)."""
        self._updating = True
        try:
            options = [ALL, *services, "notebook"]
            if list(self.service.options) != options:
                current = self.service.value
                self.service.options = options
                self.service.value = current if current in options else ALL
            ids = list(reversed(self.recent))
            if list(self.ids.options) != ids:
                current = self.ids.value
                self.ids.options = ids
                self.ids.value = current if current in ids else None
        finally:
            self._updating = False
        appended = self.appended
        if appended == self._drawn:
            return
        self._drawn = appended
        shown = list(self.lines)[-LOG_SHOWN:]
        body = "<br>".join(
            f"<span style='color:{LEVEL_COLORS.get(level, '#212121')}'>{html.escape(line)}</span>"
            for level, line in shown
        )
        self.out.value = (
            "<div style='font-family:monospace;font-size:12px;max-height:260px;overflow:auto;"
            f"border:1px solid #ddd;padding:4px'>{body or '<i>no lines yet</i>'}</div>"
        )
