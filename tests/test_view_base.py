"""The view base: redraws throttled and batched, errors shown in the widget, close() stops everything."""

from __future__ import annotations

import threading
import time

import ipywidgets as widgets

from widgets.view_base import MAX_REDRAWS_PER_S, ViewBase


class Counter(ViewBase):
    def __init__(self, fail: bool = False, tick_s: float | None = None) -> None:
        super().__init__("counter", tick_s=tick_s)
        self.fail = fail
        self.widget = widgets.VBox([self.errors])

    def redraw(self) -> None:
        if self.fail:
            raise RuntimeError("the service went away")


class Watch:
    def __init__(self) -> None:
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()


def test_many_changes_make_few_redraws_and_close_stops_the_thread_and_watches() -> None:
    view = Counter()
    watch = view.keep(Watch())
    view.start_redraws()
    end = time.monotonic() + 1.5
    while time.monotonic() < end:  # a flood of changes from another thread
        view.mark_dirty()
        time.sleep(0.001)
    view.close()
    assert 1 <= view.redraws <= MAX_REDRAWS_PER_S * 1.5 + 2
    assert not view.running and watch.stopped.is_set()


def test_errors_show_in_the_widget_bounded_and_the_view_goes_on() -> None:
    view = Counter(fail=True, tick_s=0.05)
    view.start_redraws()
    deadline = time.monotonic() + 5
    while len(view.error_lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert view.running  # an error does not end the thread
    view.close()
    assert "RuntimeError: the service went away" in view.errors.value
    assert 2 <= len(view.error_lines) <= 5

    button = view.guarded(lambda: 1 / 0, "button")
    assert button() is None
    assert "ZeroDivisionError" in view.errors.value and "button" in view.error_lines[-1]
