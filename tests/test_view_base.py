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


def test_the_ported_views_draw_a_real_lab_and_close(lab_factory) -> None:
    """HealthBoard, LogTail, LoadView and ConfigEditor on the view base, against a real lab."""
    from waiting import wait_until

    from widgets.config_view import ConfigEditor
    from widgets.health_view import HealthBoard
    from widgets.load_view import LoadView
    from widgets.log_view import LogTail

    lab = lab_factory("mission-control")
    health, tail, load = (
        HealthBoard(lab),
        LogTail(lab, service="calculator"),
        LoadView(lab, target="calculator"),
    )
    editor = ConfigEditor(lab, "calculator")
    views = (health, tail, load, editor)
    for view in views:
        view.show()
    try:
        wait_until(lambda: "calculator-1" in health.table.value and health.redraws > 0, 20, "health drawn")
        lab.kill("calculator", "calculator-2")
        wait_until(lambda: any("calculator-2" in line for line in health.lines), 20, "a transition logged")
        test = load.start()
        assert test is not None
        wait_until(lambda: test.done and "sent" in load.status.value, 30, "the load summary")
        assert len(load.figure.data[0].x) > 0
        wait_until(lambda: tail.lines, 20, "calculator log lines")
        editor.key.value, editor.value.value = "max_connections", "3"
        assert editor.set() is not None
        wait_until(lambda: "max_connections = 3" in str(editor.out.outputs), 20, "the live list")
        assert not any(v.error_lines for v in views), [list(v.error_lines) for v in views]
    finally:
        for view in views:
            view.close()
    assert not any(v.running for v in views)
