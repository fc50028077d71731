"""The chapters' "Reset lab" button (widgets/reset_button.py) pressed on a real lab: the lab is back
to its lab file and the widget shows what the reset did; an error shows in the widget.
Lab.up() on a lab with a FATAL instance says how to get it back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest
from test_reset import crash_until_fatal

from runtime.errors import StartupError
from runtime.lab import Lab
from widgets.reset_button import ResetButton


def test_pressing_reset_brings_the_lab_back_and_shows_the_report(lab_factory) -> None:
    lab = lab_factory("mission-control")
    clean = sorted(lab.status().instance)
    lab.scale("calculator", 3)
    lab.wait_for(lambda: "calculator-3" in set(lab.status().instance), 20, "calculator-3")
    lab.chaos.inject("calculator", "delay", duration_s=120, delay_ms=300)
    lab.config.set("calculator", "max_connections", 3, "int")
    button = ResetButton(lab)
    bundle = button._repr_mimebundle_()  # what a cell's last expression shows: the widget
    assert bundle is not None and "application/vnd.jupyter.widget-view+json" in bundle

    button.button.click()  # the handler runs the reset synchronously: it is done when click returns

    status = lab.status()
    assert sorted(status.instance) == clean and set(status.state) == {"RUNNING"}, status
    assert lab.chaos.faults().empty and lab.config.values().empty
    shown = button.out.value
    for line in (
        "faults cleared: 1",
        "config keys deleted: 1",
        "scaled back: calculator 3 -&gt; 2",
        "started again: none",
    ):
        assert line in shown, shown
    assert button.errors.value == "" and not button.button.disabled


def test_up_on_a_fatal_lab_says_how_to_recover_and_the_button_does_it(lab_factory) -> None:
    lab = lab_factory("mission-control")
    crash_until_fatal(lab, "calculator-2")
    with pytest.raises(StartupError) as info:
        Lab.up(lab_dir=lab.lab_dir, timeout_s=5)  # a cell run again in the same kernel
    message = str(info.value)
    assert "calculator-2 is FATAL" in message
    assert "Lab.attach().reset()" in message and "restart('calculator', 'calculator-2')" in message
    # A new kernel (another process) says the same, and that the lab keeps running.
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from runtime.lab import Lab; Lab.up(lab_dir={str(lab.lab_dir)!r}, timeout_s=5)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.returncode != 0 and "calculator-2 is FATAL" in other.stderr, other.stderr
    assert "keeps running" in other.stderr and "Lab.attach().reset()" in other.stderr, other.stderr

    button = ResetButton(lab)
    button.button.click()
    assert "started again: calculator-2" in button.out.value
    assert set(lab.status().state) == {"RUNNING"}
    assert Lab.up(lab_dir=lab.lab_dir, timeout_s=5) is lab  # up works again


def test_an_error_shows_in_the_widget(lab_factory) -> None:
    lab = lab_factory("mission-control")
    button = ResetButton(lab)
    # The lab stops under the notebook (`runtime-lab down` in a terminal): its daemon gets SIGTERM.
    os.kill(lab.pid, signal.SIGTERM)
    psutil.Process(lab.pid).wait(20)
    button.button.click()
    assert "reset failed" in button.out.value
    assert "LabNotRunning" in button.errors.value, button.errors.value
    assert button.report is None and not button.button.disabled
