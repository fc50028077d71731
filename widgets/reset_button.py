"""A "Reset lab" button for a chapter's first cell: ``lab.reset()`` and what it did, in the widget.

A chapter leaves faults, load, config, extra or FATAL instances behind; the next one should
start from the lab file's state. The button calls ``lab.reset()`` (see ``runtime/lab/reset.py``)
and shows its report line by line under the button; an error (the lab is down, an instance does
not come back) shows there too, never only in a log or the browser console.

The reset runs *synchronously* in the button's handler, on purpose: ipywidgets runs a handler
on the kernel's main thread while it handles the click, so the kernel is busy until the lab is
back, and a cell the learner runs meanwhile waits for it instead of racing a half-reset lab.
The widget still updates while it runs ("resetting ...", button disabled): state changes go out
on the kernel's IOPub channel at once. (MissionControl resets on a thread instead: a dashboard
must keep drawing, and no cell follows it.)

    from widgets.reset_button import ResetButton
    ResetButton(lab)          # last expression of the cell: the button shows
"""

from __future__ import annotations

import html
import time
from typing import Any, Protocol

import ipywidgets as widgets

from widgets.view_base import ViewBase


class ResetSource(Protocol):
    """What the button uses: ``lab.reset()`` (returns a report with the fields of ``ResetReport``)."""

    def reset(self, timeout_s: float = ...) -> Any: ...


def report_lines(report: Any) -> list[str]:
    """What ``lab.reset()`` did, one line per step: ``ResetReport.lines()`` (other objects: their str)."""
    lines = getattr(report, "lines", None)
    return list(lines()) if callable(lines) else [str(report)]


class ResetButton(ViewBase):
    """A "Reset lab" button; pressing it runs ``lab.reset()`` and shows the report below it.

    Args:
        lab: the running Lab (anything with ``reset()``).
        timeout_s: how long the reset may wait for instances to come back.

    Attributes:
        button: the button (``button.click()`` presses it from code).
        report: the last report (None before the first press or after an error).
        out: the HTML under the button: "resetting ...", then the report.
    """

    def __init__(self, lab: ResetSource, timeout_s: float = 30.0) -> None:
        super().__init__("reset")
        self.lab = lab
        self.timeout_s = timeout_s
        self.report: Any = None
        self.button = widgets.Button(
            description="Reset lab",
            button_style="info",
            icon="undo",
            tooltip="lab.reset(): clear faults and load, delete config, scale back to lab.yaml, restart FATAL",
        )
        self.button.add_class("lab-reset")
        self.button.on_click(self.guarded(lambda _b: self.press(), "reset"))
        self.out = widgets.HTML(
            "<span style='color:#757575'>back to lab.yaml whenever a chapter left the lab in a mess</span>"
        )
        self.widget = widgets.VBox([widgets.HBox([self.button, self.out]), self.errors])
        self.widget.add_class("reset-button")

    def press(self) -> Any:
        """What the button does: ``lab.reset()``, its report shown; returns it (errors shown, re-raised)."""
        self.clear_errors()
        self.report = None
        self.button.disabled = True
        self.out.value = f"<i>{time.strftime('%H:%M:%S')} resetting the lab ...</i>"
        try:
            self.report = self.lab.reset(self.timeout_s)
        except Exception:
            self.out.value = "<span style='color:#c62828'>reset failed (see below)</span>"
            raise  # guarded() shows it in self.errors
        finally:
            self.button.disabled = False
        self.redraw()
        return self.report

    def redraw(self) -> None:
        """Show the last report (nothing to do before the first press)."""
        if self.report is None:
            return
        items = "".join(f"<li>{html.escape(line)}</li>" for line in report_lines(self.report))
        self.out.value = (
            f"<b>{time.strftime('%H:%M:%S')} lab reset to lab.yaml</b>"
            f"<ul style='margin:2px 0;padding-left:18px'>{items}</ul>"
        )

    def show(self) -> None:
        """Display the button (no redraw thread: it changes only when pressed)."""
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """Shown as the button when it is a cell's last expression (text elsewhere)."""
        bundle = self.widget._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        bundle["text/plain"] = "ResetButton: press 'Reset lab' to run lab.reset()"
        return bundle
