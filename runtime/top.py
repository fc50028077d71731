"""`runtime-lab top`: a live terminal table of the lab (the terminal twin of the seed's Ink TUI)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

import pandas as pd

if TYPE_CHECKING:
    from runtime.lab import Lab

REFRESH_S = 1.0
CLEAR = "\x1b[H\x1b[2J"
STATE_COLORS = {
    "RUNNING": "32",
    "STARTING": "33",
    "WAITING": "33",
    "BACKOFF": "33",
    "STOPPING": "33",
    "FATAL": "31",
    "EXITED": "31",
}
TOP_COLUMNS = ["service", "instance", "pid", "state", "restarts", "port", "uptime_s", "cpu_percent", "rss_mb"]


def render(status: pd.DataFrame, events: pd.DataFrame, *, color: bool) -> str:
    """The screen: the process table and the last few lifecycle events."""
    table = status[TOP_COLUMNS].fillna("").astype(str)
    widths = {c: max(len(c), *(len(v) for v in table[c])) if len(table) else len(c) for c in TOP_COLUMNS}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in TOP_COLUMNS)]
    for _, row in table.iterrows():
        cells = [row[c].ljust(widths[c]) for c in TOP_COLUMNS]
        if color and row["state"] in STATE_COLORS:
            cells[3] = f"\x1b[{STATE_COLORS[row['state']]}m{cells[3]}\x1b[0m"
        lines.append("  ".join(cells))
    lines += ["", "recent events:"]
    for _, ev in events.tail(8).iterrows():
        lines.append(f"  {ev.time:%H:%M:%S.%f}"[:-3] + f"  {ev.instance:<16} {ev.event:<18} {ev.reason}")
    return "\n".join(lines)


def run(lab: Lab, *, iterations: int = 0, out: TextIO = sys.stdout) -> None:
    """Redraw every second until Ctrl-C (or ``iterations`` times, for tests)."""
    color = out.isatty()
    n = 0
    while True:
        screen = render(lab.status(), lab.events(limit=8), color=color)
        out.write((CLEAR if color else "") + screen + "\n")
        out.flush()
        n += 1
        if iterations and n >= iterations:
            return
        time.sleep(REFRESH_S)
