"""MissionControl's tiles: one per instance, coloured by health, with its numbers and its buttons.

A tile's colour says what a learner should look at first (``tile_color``, a pure rule):

==========  ==================================================================
fatal       the supervisor gave up (start limit): "start again" brings it back
red         not running (exited, backing off, starting), not responding, or UNHEALTHY
amber       DEGRADED (slow answers or too much in flight)
green       running and HEALTHY (or running and answering, for a service with no health report)
blue        running, its health still STARTING
grey        stopped on purpose, or skipped (something it requires is missing)
==========  ==================================================================

Each tile's HTML carries ``data-instance`` and ``data-color`` and its buttons the classes
``mc-kill-<instance>`` etc., so a browser test finds them.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import pandas as pd

COLORS = {
    "fatal": "#6a1b9a",
    "red": "#c62828",
    "amber": "#f9a825",
    "green": "#2e7d32",
    "blue": "#1e88e5",
    "grey": "#9e9e9e",
}
TILE_WIDTH = "230px"

# act(what, fn): run one lab action (fn) on behalf of a button, showing ``what`` and any error.
Act = Callable[[str, Callable[[], object]], None]


def tile_color(state: str, health: str | None, responding: bool) -> str:
    """The colour name of a tile (see the module table).

    >>> tile_color("RUNNING", "HEALTHY", True), tile_color("RUNNING", "DEGRADED", True)
    ('green', 'amber')
    >>> tile_color("BACKOFF", "HEALTHY", True), tile_color("RUNNING", "HEALTHY", False), tile_color("FATAL", None, False)
    ('red', 'red', 'fatal')
    """
    if state == "FATAL":
        return "fatal"
    if state in ("STOPPED", "SKIPPED"):
        return "grey"
    if state != "RUNNING" or not responding or health == "UNHEALTHY":
        return "red"
    if health == "DEGRADED":
        return "amber"
    if health == "STARTING":
        return "blue"
    return "green"


def _uptime(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def tile_html(row: Any, health: str | None, reason: str, frozen: bool) -> str:
    """The text part of one tile: name, state, health and the process numbers."""
    responding = bool(row.responding) if row.responding is not pd.NA else True
    color = tile_color(str(row.state), health, responding)
    pid = "" if pd.isna(row.pid) else int(row.pid)
    label = health or "no health report"
    if str(row.state) != "RUNNING":
        label = f"{row.state}" + (f" ({health})" if health else "")
    if frozen:
        label += " · frozen"
    elif not responding:
        label += " · not responding"
    detail = html.escape(reason or str(row.last_exit_reason or ""))[:90]
    return (
        f"<div class='mc-tile' data-instance='{html.escape(str(row.instance))}' data-color='{color}' "
        f"style='background:{COLORS[color]};color:white;padding:6px 8px;border-radius:6px;"
        f"font-family:monospace;font-size:12px;line-height:1.35'>"
        f"<b style='font-size:14px'>{html.escape(str(row.instance))}</b><br>"
        f"{html.escape(label)}<br>"
        f"pid {pid} · restarts {row.restarts}<br>"
        f"up {_uptime(float(row.uptime_s or 0))} · cpu {float(row.cpu_percent or 0):.0f}% · "
        f"rss {float(row.rss_mb or 0):.0f} MB<br>"
        f"<span style='opacity:.85'>{detail or '&nbsp;'}</span></div>"
    )


class Tile:
    """One instance's tile: the HTML and its buttons (kill, restart, freeze/thaw, start again)."""

    def __init__(self, service: str, instance: str, act: Act, actions: Any) -> None:
        self.service, self.instance = service, instance
        self.text = widgets.HTML()

        def small() -> widgets.Layout:  # one Layout each: hiding "start again" must not hide the others
            return widgets.Layout(width="auto", padding="0 6px")

        self.kill = widgets.Button(description="kill", button_style="danger", layout=small())
        self.restart = widgets.Button(description="restart", layout=small())
        self.freeze = widgets.Button(description="freeze", layout=small())
        self.start_again = widgets.Button(description="start again", button_style="success", layout=small())
        for name in ("kill", "restart", "freeze", "start_again"):
            getattr(self, name).add_class(f"mc-{name.replace('_', '-')}-{instance}")
        self.kill.on_click(lambda _b: act(f"kill {instance}", lambda: actions.kill(instance)))
        self.restart.on_click(lambda _b: act(f"restart {instance}", lambda: actions.restart(instance)))
        self.freeze.on_click(
            lambda _b: act(f"freeze/thaw {instance}", lambda: actions.toggle_freeze(instance))
        )
        self.start_again.on_click(
            lambda _b: act(f"start {instance} again", lambda: actions.start_again(instance))
        )
        self.buttons = widgets.HBox([self.kill, self.restart, self.freeze])
        self.box = widgets.VBox(
            [self.text, self.buttons, self.start_again],
            layout=widgets.Layout(width=TILE_WIDTH, margin="3px"),
        )

    def close(self) -> None:
        """Free the tile's widgets (the instance was scaled away)."""
        for w in (self.text, self.kill, self.restart, self.freeze, self.start_again, self.buttons, self.box):
            w.layout.close()
            w.close()

    def update(self, row: Any, health: str | None, reason: str, frozen: bool) -> None:
        """Repaint from a status row (only what changed is sent)."""
        text = tile_html(row, health, reason, frozen)
        if self.text.value != text:
            self.text.value = text
        fatal = str(row.state) == "FATAL"
        # None removes the style (the widget's own display applies); "" would hide it in a browser.
        self.start_again.layout.display = None if fatal else "none"
        self.buttons.layout.display = "none" if fatal else None
        label = "thaw" if frozen else "freeze"
        if self.freeze.description != label:
            self.freeze.description = label


class Tiles:
    """Every instance's tile in a wrapping row; tiles come and go with the instances."""

    def __init__(self, act: Act, actions: Any) -> None:
        self._act, self._actions = act, actions
        self.tiles: dict[str, Tile] = {}
        self.box = widgets.Box(layout=widgets.Layout(display="flex", flex_flow="row wrap"))

    def update(self, status: pd.DataFrame, health: dict[str, tuple[str, str]], frozen: set[str]) -> None:
        """One repaint from ``lab.status()`` and the latest health per instance."""
        order = list(status.instance)
        for row in status.itertuples():
            inst = str(row.instance)
            tile = self.tiles.get(inst)
            if tile is None:
                tile = self.tiles[inst] = Tile(str(row.service), inst, self._act, self._actions)
            state, reason = health.get(inst, (None, ""))
            tile.update(row, state, reason, inst in frozen)
        gone = [self.tiles.pop(i) for i in set(self.tiles) - set(order)]
        children = tuple(self.tiles[i].box for i in order)
        if tuple(self.box.children) != children:
            self.box.children = children
        for tile in gone:
            tile.close()

    def colors(self) -> dict[str, str]:
        """``{instance: colour name}`` as drawn now (for tests and self-checks)."""
        out = {}
        for inst, tile in self.tiles.items():
            marker = "data-color='"
            value = tile.text.value
            at = value.find(marker)
            out[inst] = value[at + len(marker) : value.find("'", at + len(marker))] if at >= 0 else ""
        return out
