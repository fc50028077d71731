"""The one base every live view stands on: update thread, throttle, bounded buffers, errors, close().

A live view gets data on other threads (a watch stream's callback, a probe, a load test's
metrics). Drawing on each of those threads floods the widget comm and the browser, and an
exception there ends up in the browser console where nobody looks. So every view does the same:

- callbacks only *note* what changed (append to a bounded ``deque`` and call ``mark_dirty()``);
- one named thread per view redraws at most ``1 / min_redraw_s`` times per second (at most
  ``MAX_REDRAWS_PER_S``), batching everything that arrived in between into one ``redraw()``
  (inside it, plotly changes go in one ``fig.batch_update()``);
- ``tick_s`` also redraws with no news (a timeline keeps advancing with the clock);
- an exception in ``redraw()``, a callback or a button handler is shown *inside the widget*
  (``self.errors``, an HTML line with the exception text) and the view keeps going;
- ``close()`` stops the thread and every watch the view registered with ``keep()``;
- a live plotly chart is a ``PlotlyOutput``: its widget state is the whole current figure, so a
  view rendered later (a Voila page, a reopened notebook) shows the current data.

    class Clock(ViewBase):
        def __init__(self) -> None:
            super().__init__("clock", tick_s=1.0)
            self.label = widgets.HTML()
            self.widget = widgets.VBox([self.label, self.errors])
        def redraw(self) -> None:
            self.label.value = time.strftime("%H:%M:%S")

    clock = Clock(); clock.show(); ...; clock.close()
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import ipywidgets as widgets
import plotly.graph_objects as go
from IPython.display import display

from widgets.sources import Stoppable

MAX_REDRAWS_PER_S = 4  # the widget comm and the browser fall behind above a few updates a second
MIN_REDRAW_S = 1.0 / MAX_REDRAWS_PER_S
ERRORS_KEPT = 5  # the last few error lines shown in the view; older ones go
JOIN_S = 5.0
PLOTLY_MIME = "application/vnd.plotly.v1+json"  # what plotly's own renderer draws (JupyterLab, Voila)
CHART_PUSH_S = 1.0  # a chart is sent whole: at most once a second (a view's tick redraws anyway)

T = TypeVar("T")


def bounded(maxlen: int) -> deque[Any]:
    """A buffer for a view: a ``deque`` that drops its oldest items past ``maxlen``."""
    return deque(maxlen=maxlen)


def stream_output(lines: list[str]) -> dict[str, str]:
    """``lines`` as one stdout output for ``Output.outputs``: the whole bounded buffer in one message."""
    return {"output_type": "stream", "name": "stdout", "text": "\n".join(lines) + ("\n" if lines else "")}


class PlotlyOutput:
    """A plotly chart whose widget state is always the whole current figure: any view draws it.

    Not a ``FigureWidget``: since plotly 6 that is an anywidget which syncs its traces once, when
    it is built, and every later change as a one-off delta message. A front end that renders the
    widget later - a Voila page connecting while the kernel already draws, a notebook reopened -
    starts from the empty figure of construction time, and in Voila its view was seen to apply no
    later delta either: the dashboard's charts stayed blank while its tiles kept updating. Here
    the figure goes out as one ``display_data`` output of an ``Output`` widget (plotly's own mime
    renderer draws it): a view created at any time gets the current figure, and each ``push()``
    replaces it whole (at most every ``min_push_s``).

    Change the figure through ``data``, ``layout`` and ``batch_update()`` as on a plotly figure,
    then ``push()``.
    """

    def __init__(self, figure: go.Figure, css_class: str = "", min_push_s: float = CHART_PUSH_S) -> None:
        self.figure = figure
        self.min_push_s = min_push_s
        self.widget = widgets.Output()
        if css_class:
            self.widget.add_class(css_class)
        self.pushes = 0
        self._pushed_at = 0.0
        self.push(force=True)  # drawn (empty) from the start, like a figure

    @property
    def data(self) -> Any:
        """The figure's traces."""
        return self.figure.data

    @property
    def layout(self) -> Any:
        """The figure's layout."""
        return self.figure.layout

    @contextmanager
    def batch_update(self) -> Iterator[None]:
        """Group changes (as ``Figure.batch_update``); ``push()`` sends them."""
        with self.figure.batch_update():
            yield

    def push(self, force: bool = False) -> bool:
        """Send the whole figure to every view (unless pushed less than ``min_push_s`` ago)."""
        now = time.monotonic()
        if not force and now - self._pushed_at < self.min_push_s:
            return False
        self._pushed_at = now
        spec = json.loads(self.figure.to_json())  # plain JSON: dates, numpy and all
        spec["config"] = {"displaylogo": False}
        height = spec.get("layout", {}).get("height")
        if height and self.widget.layout.min_height != f"{height}px":
            self.widget.layout.min_height = f"{height}px"  # the page does not jump while it redraws
        title = self.figure.layout.title.text or "chart"
        self.widget.outputs = (
            {"output_type": "display_data", "metadata": {}, "data": {PLOTLY_MIME: spec, "text/plain": title}},
        )
        self.pushes += 1
        return True


class ViewBase:
    """Owns a view's redraw thread, its throttle, its error line and its ``close()``.

    Subclasses implement ``redraw()`` and put ``self.errors`` somewhere in their widget.

    Args:
        name: names the thread (``<name>-redraw``) and prefixes error lines.
        min_redraw_s: the least time between two redraws (never below ``MIN_REDRAW_S``).
        tick_s: redraw at least this often even without ``mark_dirty()`` (None: only on news).
    """

    widget: widgets.Widget

    def __init__(self, name: str, *, min_redraw_s: float = MIN_REDRAW_S, tick_s: float | None = None) -> None:
        self.name = name
        self.min_redraw_s = max(min_redraw_s, MIN_REDRAW_S)
        self.tick_s = tick_s
        self.errors = widgets.HTML()
        self.error_lines: deque[str] = bounded(ERRORS_KEPT)
        self.redraws = 0
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watches: list[Stoppable] = []
        self._lock = threading.Lock()

    # -- for subclasses --------------------------------------------------------------------

    def redraw(self) -> None:
        """Repaint the view from its buffers (runs on the view's thread, or called directly)."""
        raise NotImplementedError

    def mark_dirty(self) -> None:
        """Something changed: the view's thread redraws soon (many calls, one redraw)."""
        self._dirty.set()

    def keep(self, watch: T) -> T:
        """Register a watch (anything with ``stop()``) for ``close()`` to stop; returns it."""
        with self._lock:
            self._watches.append(watch)  # type: ignore[arg-type]
        return watch

    def release(self, watch: Stoppable | None) -> None:
        """Stop one kept watch now (e.g. a filter changed and a new tail replaces it)."""
        if watch is None:
            return
        with self._lock:
            if watch in self._watches:
                self._watches.remove(watch)
        watch.stop()

    def guarded(self, fn: Callable[..., Any], where: str = "") -> Callable[..., Any]:
        """``fn`` wrapped so an exception is shown in the view instead of lost (buttons, callbacks)."""

        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - the point: show it in the widget
                self.report_error(err, where or getattr(fn, "__name__", "callback"))
                return None

        return run

    def report_error(self, err: BaseException | str, where: str = "") -> None:
        """Show ``err`` in the view's error line (the last ``ERRORS_KEPT`` are kept)."""
        text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
        line = f"{time.strftime('%H:%M:%S')} {self.name}{' ' + where if where else ''}: {text}"
        self.error_lines.append(line[:500])
        self.errors.value = (
            "<div style='color:#c62828;font-family:monospace;white-space:pre-wrap'>"
            + ("<br>".join(html.escape(x) for x in self.error_lines))
            + "</div>"
        )

    def clear_errors(self) -> None:
        """Empty the error line."""
        self.error_lines.clear()
        self.errors.value = ""

    # -- lifecycle -------------------------------------------------------------------------

    def show(self) -> None:
        """Display the view (from the notebook's main thread) and start its redraw thread."""
        display(self.widget)
        self.start_redraws()

    def start_redraws(self) -> None:
        """Start the redraw thread (again, after ``close()``); idempotent."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"{self.name}-redraw", daemon=True)
        self._thread.start()
        self._dirty.set()

    @property
    def running(self) -> bool:
        """True while the redraw thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        """Stop the redraw thread and every kept watch; the widgets keep their last picture."""
        self._stop.set()
        self._dirty.set()
        with self._lock:
            watches, self._watches = self._watches, []
        for w in watches:
            try:
                w.stop()
            except Exception as err:  # noqa: BLE001 - one broken watch must not keep the others running
                self.report_error(err, "close")
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=JOIN_S)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait(self.tick_s)
            if self._stop.is_set():
                return
            self._dirty.clear()
            try:
                self.redraw()
                self.redraws += 1
            except Exception as err:  # noqa: BLE001 - e.g. a service restarts: say so and go on
                self.report_error(err, "redraw")
            self._stop.wait(self.min_redraw_s)
