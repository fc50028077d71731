"""`runtime-lab top`: the lab live in a terminal (the terminal twin of the seed's Ink TUI).

    runtime-lab top        # arrows select an instance; k kill, r restart, f freeze/thaw,
                           # + / - scale its service, q quit; the log pane follows the selection
    runtime-lab top -b -n 3    # batch mode (like top -b): plain snapshots, for pipes and scripts

A Textual app, so it works over SSH and in tmux. It is driven by the lab's streams, not by a
redraw loop: the supervisor's WatchProcessEvents (every lifecycle decision) and the health
service's WatchHealth (every transition) each trigger a refresh of the table, and the log pane
is a SubscribeLogs tail of the selected service. CPU, RSS and uptime change without any event,
so they alone are refreshed on a slow timer (``METRICS_REFRESH_S``).

Everything the app needs from the lab is the :class:`TopSource` protocol; :class:`runtime.lab.Lab`
is one. Actions run in worker threads so a slow RPC never freezes the screen, and their errors
show as notifications, never as a traceback.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Protocol, TextIO

import pandas as pd
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Header, RichLog

from runtime.errors import LabError

METRICS_REFRESH_S = 2.0  # CPU/RSS/uptime have no stream; everything else follows events
REFRESH_DEBOUNCE_S = 0.1  # a burst of events (a restart is 4-5 of them) becomes one table refresh
EVENT_LINES = 200  # bounded panes: the terminal is a view, the logger keeps the history
LOG_LINES = 500
LOG_BACKFILL = 20  # the selected service's last lines, so an idle service's pane is not blank
COLUMNS = ("service", "instance", "pid", "state", "health", "restarts", "port", "uptime", "cpu %", "rss MB")
STATE_STYLES = {
    "RUNNING": "green",
    "STARTING": "yellow",
    "WAITING": "yellow",
    "BACKOFF": "yellow",
    "STOPPING": "yellow",
    "FATAL": "bold red",
    "EXITED": "red",
    "STOPPED": "dim",
    "SKIPPED": "dim",
}
HEALTH_STYLES = {"HEALTHY": "green", "DEGRADED": "yellow", "UNHEALTHY": "bold red", "STARTING": "yellow"}


class Stoppable(Protocol):
    """A background watch: ``stop()`` ends it."""

    def stop(self) -> None: ...


class Watchable(Protocol):
    """A part of the lab with a live watch (``lab.health``)."""

    def watch(self, callback: Any) -> Stoppable: ...


class Tailable(Protocol):
    """A part of the lab with recent entries and a live tail (``lab.logs``)."""

    def __call__(self, service: Any = None, *, limit: int = ...) -> pd.DataFrame: ...
    def tail(self, callback: Any, **filters: Any) -> Stoppable: ...


class TopSource(Protocol):
    """What ``runtime-lab top`` uses of a lab (``runtime.lab.Lab`` provides all of it)."""

    lab_dir: Any

    def status(self) -> pd.DataFrame: ...
    def kill(self, service: str, instance: str | int | None = None, signal: str | int = "SIGKILL") -> dict: ...
    def restart(self, service: str, instance: str | int | None = None) -> pd.DataFrame: ...
    def scale(self, service: str, n: int) -> pd.DataFrame: ...
    def watch_events(self, callback: Any, replay: int = 0) -> Stoppable: ...
    @property
    def health(self) -> Watchable: ...
    @property
    def logs(self) -> Tailable: ...


def _uptime(seconds: float) -> str:
    """``3m07s`` for the table (empty when not running)."""
    if seconds is None or pd.isna(seconds) or not seconds:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _newest_first(frame: pd.DataFrame) -> bool:
    """Whether a log frame lists its newest entry first (the pane writes oldest first)."""
    return len(frame) > 1 and frame["time"].iloc[0] > frame["time"].iloc[-1]


def _number(value: Any, fmt: str) -> str:
    """A table cell: empty for a missing value (None, NaN, pandas NA), else ``value`` formatted."""
    return "" if value is None or pd.isna(value) else format(value, fmt)


def _id(value: Any) -> str:
    """A pid or port cell: empty when missing or 0."""
    return "" if value is None or pd.isna(value) or not value else str(int(value))


class TopApp(App[None]):
    """The live process table, its events and the selected service's logs, with keys to act."""

    TITLE = "runtime-lab top"
    CSS = """
    #processes { height: 1fr; }
    #panes { height: 12; }
    #events, #logs { width: 1fr; border: round $secondary; }
    """
    BINDINGS = [
        Binding("k", "kill", "Kill"),
        Binding("r", "restart", "Restart"),
        Binding("f", "freeze", "Freeze/thaw"),
        Binding("plus,equals_sign", "scale(1)", "Scale +1", key_display="+"),
        Binding("minus", "scale(-1)", "Scale -1", key_display="-"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, lab: TopSource) -> None:
        super().__init__()
        self.lab = lab
        self.frozen: set[str] = set()  # instances this app sent SIGSTOP and not yet SIGCONT
        self.health: dict[str, str] = {}
        self.rows: dict[str, pd.Series] = {}
        self.refreshes = 0
        self._watches: list[Stoppable] = []
        self._tail: Stoppable | None = None
        self._tail_service = ""
        self._tail_lock = threading.Lock()
        self._refresh_timer: Any = None

    # -- layout and start -------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="processes", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="panes"):
            yield RichLog(id="events", max_lines=EVENT_LINES, wrap=True, markup=False)
            yield RichLog(id="logs", max_lines=LOG_LINES, wrap=True, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.lab.lab_dir)
        table = self.query_one("#processes", DataTable)
        for name in COLUMNS:
            table.add_column(name, key=name)
        self.query_one("#events", RichLog).border_title = "events"
        self.query_one("#logs", RichLog).border_title = "logs (select a row)"
        self.set_interval(METRICS_REFRESH_S, self.refresh_table)
        self.refresh_table()
        self._start_watches()

    @work(thread=True, exclusive=False, group="watches")
    def _start_watches(self) -> None:
        # Opening a stream can take a moment when a service is restarting: off the UI thread.
        self._watches.append(self.lab.watch_events(self._event_from_thread, replay=20))
        self._watches.append(self.lab.health.watch(self._health_from_thread))

    def on_unmount(self) -> None:
        for watch in self._watches:
            watch.stop()
        # A frozen process left behind would look dead to everyone else: thaw what we froze.
        for instance in sorted(self.frozen):
            row = self.rows.get(instance)
            if row is not None:
                try:
                    self.lab.kill(str(row["service"]), instance, signal="SIGCONT")
                except LabError:
                    pass
        with self._tail_lock:
            if self._tail is not None:
                self._tail.stop()

    # -- streams (called on their own threads) ----------------------------------------------

    def _event_from_thread(self, event: dict) -> None:
        self.call_from_thread(self._on_event, event)

    def _health_from_thread(self, change: Any) -> None:
        self.call_from_thread(self._on_health, change.instance, change.new_state)

    def _on_event(self, event: dict) -> None:
        when = event["time"].strftime("%H:%M:%S") if event.get("time") is not None else ""
        line = f"{when} {event['instance']:<16} {event['event']:<14} {event['reason']}"
        self.query_one("#events", RichLog).write(line)
        self._schedule_refresh()

    def _on_health(self, instance: str, state: str) -> None:
        self.health[instance] = state
        self._schedule_refresh()

    def _schedule_refresh(self) -> None:
        if self._refresh_timer is None:
            self._refresh_timer = self.set_timer(REFRESH_DEBOUNCE_S, self._debounced_refresh)

    def _debounced_refresh(self) -> None:
        self._refresh_timer = None
        self.refresh_table()

    # -- the table --------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="refresh")
    def refresh_table(self) -> None:
        """Read the process list (off the UI thread) and redraw the table with it."""
        try:
            status = self.lab.status()
        except LabError as err:
            self.call_from_thread(self.notify, str(err)[:300], title="status failed", severity="error")
            return
        self.call_from_thread(self._draw, status)

    def _draw(self, status: pd.DataFrame) -> None:
        table = self.query_one("#processes", DataTable)
        seen = set()
        for _, row in status.iterrows():
            key = str(row["instance"])
            seen.add(key)
            self.rows[key] = row
            cells = self._cells(row)
            if key in table.rows:
                for name, value in zip(COLUMNS, cells, strict=True):
                    table.update_cell(key, name, value, update_width=True)
            else:
                table.add_row(*cells, key=key)
        for gone in [k for k in table.rows if k.value not in seen]:
            table.remove_row(gone)
            self.rows.pop(str(gone.value), None)
        self.refreshes += 1
        if self._tail_service == "" and table.row_count:
            self._follow_selected()

    def _cells(self, row: pd.Series) -> tuple[Any, ...]:
        instance = str(row["instance"])
        state = str(row["state"])
        if instance in self.frozen and state == "RUNNING":
            state_text = Text("FROZEN", style="bold magenta")
        else:
            state_text = Text(state, style=STATE_STYLES.get(state, ""))
        health = self.health.get(instance, "")
        return (
            str(row["service"]),
            instance,
            _id(row["pid"]),
            state_text,
            Text(health, style=HEALTH_STYLES.get(health, "")),
            str(int(row["restarts"])),
            _id(row["port"]),
            _uptime(row["uptime_s"]),
            _number(row["cpu_percent"], ".1f"),
            _number(row["rss_mb"], ".0f"),
        )

    def selected(self) -> pd.Series | None:
        """The process row under the cursor, or None when the table is empty."""
        table = self.query_one("#processes", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.rows.get(str(key))

    # -- the log pane follows the selection --------------------------------------------------

    @on(DataTable.RowHighlighted, "#processes")
    def _row_highlighted(self) -> None:
        self._follow_selected()

    def _follow_selected(self) -> None:
        row = self.selected()
        if row is not None and row["service"] != self._tail_service:
            self._tail_service = str(row["service"])
            logs = self.query_one("#logs", RichLog)
            logs.clear()
            logs.border_title = f"logs: {self._tail_service}"
            self._retail(self._tail_service)

    @work(thread=True, exclusive=True, group="tail")
    def _retail(self, service: str) -> None:
        with self._tail_lock:
            if self._tail is not None:
                self._tail.stop()
                self._tail = None
            try:
                recent = self.lab.logs(service, limit=LOG_BACKFILL)
                for entry in reversed(recent.to_dict("records")) if _newest_first(recent) else recent.to_dict("records"):
                    self._log_from_thread(service, entry)
                self._tail = self.lab.logs.tail(lambda e: self._log_from_thread(service, e), service=service)
            except (LabError, ValueError) as err:
                self.call_from_thread(self.notify, str(err)[:300], title="log tail failed", severity="warning")

    def _log_from_thread(self, service: str, entry: dict) -> None:
        if service == self._tail_service:
            when = entry["time"].strftime("%H:%M:%S") if entry.get("time") is not None else ""
            line = f"{when} {entry.get('level', ''):<5} {entry.get('instance', '')}: {entry.get('message', '')}"
            self.call_from_thread(self.query_one("#logs", RichLog).write, line)

    # -- actions on the selected instance ----------------------------------------------------

    def action_kill(self) -> None:
        self._act("kill", "SIGKILL")

    def action_restart(self) -> None:
        self._act("restart", "")

    def action_freeze(self) -> None:
        row = self.selected()
        if row is not None:
            self._act("thaw" if str(row["instance"]) in self.frozen else "freeze", "")

    def action_scale(self, delta: int) -> None:
        self._act("scale", str(delta))

    @work(thread=True, group="actions")
    def _act(self, what: str, arg: str) -> None:
        row = self.selected()
        if row is None:
            return
        service, instance = str(row["service"]), str(row["instance"])
        try:
            if what == "kill":
                self.lab.kill(service, instance, signal=arg)
                message = f"sent SIGKILL to {instance}"
            elif what == "restart":
                self.lab.restart(service, instance)
                message = f"restarting {instance}"
            elif what == "freeze":
                self.lab.kill(service, instance, signal="SIGSTOP")
                self.frozen.add(instance)
                message = f"froze {instance} (SIGSTOP): press f again to thaw"
            elif what == "thaw":
                self.lab.kill(service, instance, signal="SIGCONT")
                self.frozen.discard(instance)
                message = f"thawed {instance} (SIGCONT)"
            else:
                count = sum(1 for r in self.rows.values() if r["service"] == service)
                self.lab.scale(service, max(0, count + int(arg)))
                message = f"scaling {service} to {max(0, count + int(arg))}"
        except LabError as err:
            self.call_from_thread(self.notify, str(err)[:300], title=f"{what} failed", severity="error")
            return
        self.call_from_thread(self.notify, message)
        self.call_from_thread(self._schedule_refresh)


def run(lab: TopSource) -> None:
    """Run the app in this terminal until the user presses q (or Ctrl-C)."""
    TopApp(lab).run()


BATCH_COLUMNS = ["service", "instance", "pid", "state", "restarts", "port", "uptime_s", "cpu_percent", "rss_mb"]
BATCH_INTERVAL_S = 1.0


def render(status: pd.DataFrame, events: pd.DataFrame) -> str:
    """One plain-text snapshot: the process table and the last few lifecycle events."""
    table = status[BATCH_COLUMNS].fillna("").astype(str)
    widths = {c: max(len(c), *(len(v) for v in table[c])) if len(table) else len(c) for c in BATCH_COLUMNS}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in BATCH_COLUMNS)]
    lines += ["  ".join(row[c].ljust(widths[c]) for c in BATCH_COLUMNS) for _, row in table.iterrows()]
    lines += ["", "recent events:"]
    for _, ev in events.tail(8).iterrows():
        lines.append(f"  {ev.time:%H:%M:%S.%f}"[:-3] + f"  {ev.instance:<16} {ev.event:<18} {ev.reason}")
    return "\n".join(lines)


def run_batch(lab: Any, iterations: int = 1, out: TextIO = sys.stdout) -> None:
    """Batch mode: print ``iterations`` snapshots, ``BATCH_INTERVAL_S`` apart (for pipes and scripts)."""
    for n in range(iterations):
        if n:
            time.sleep(BATCH_INTERVAL_S)
        out.write(render(lab.status(), lab.events(limit=8)) + "\n\n")
        out.flush()
