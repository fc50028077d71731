"""MissionControl built against a real lab; its buttons pressed, their effect asserted on the lab."""

from __future__ import annotations

import time

import pandas as pd
import psutil
from waiting import wait_until

from calculator.lab import CalculatorLab
from widgets.mission_control import MissionControl

WAIT_S = 20.0


def pid_of(lab, instance: str) -> int:
    return int(lab.status().set_index("instance").pid[instance])


def test_tiles_buttons_chaos_logs_and_reset_act_on_the_lab(lab_factory) -> None:
    lab = lab_factory("mission-control")
    clean = sorted(lab.status().instance)
    mc = MissionControl(lab, probe=CalculatorLab(lab).latency_probe())
    mc.follow()
    try:
        wait_until(lambda: set(mc.tiles.colors()) == set(clean), WAIT_S, "a tile per instance")
        wait_until(
            lambda: (
                mc.tiles.colors()["calculator-1"] == "green" and mc.tiles.colors()["calculator-2"] == "green"
            ),
            WAIT_S,
            "calculators green",
        )
        wait_until(lambda: len(mc.probe.samples) > 2 and mc.redraws > 2, WAIT_S, "probe samples drawn")
        assert len(mc.chart.data[0].x) > 0 and len(mc.timeline.data[0].x) > 0

        # kill -> a new pid, the tile red then green again, a kill marker on the chart
        old = pid_of(lab, "calculator-1")
        mc.tiles.tiles["calculator-1"].kill.click()
        wait_until(
            lambda: mc.tiles.colors()["calculator-1"] in ("red", "blue"), WAIT_S, "the tile to turn red"
        )
        lab.wait_restarted("calculator-1", old)
        wait_until(lambda: mc.tiles.colors()["calculator-1"] == "green", WAIT_S, "the tile green again")
        wait_until(lambda: any(m[1] == "kill" for m in mc.markers), WAIT_S, "a kill marker")

        # freeze -> state T (stopped), thaw -> running again
        pid = pid_of(lab, "calculator-2")
        mc.tiles.tiles["calculator-2"].freeze.click()
        wait_until(lambda: psutil.Process(pid).status() == psutil.STATUS_STOPPED, WAIT_S, "SIGSTOP")
        wait_until(
            lambda: mc.tiles.tiles["calculator-2"].freeze.description == "thaw", WAIT_S, "a thaw button"
        )
        mc.tiles.tiles["calculator-2"].freeze.click()
        wait_until(lambda: psutil.Process(pid).status() != psutil.STATUS_STOPPED, WAIT_S, "SIGCONT")
        assert pid_of(lab, "calculator-2") == pid

        # a fault button -> the chaos service lists it; the panel shows it with a countdown
        mc.chaos.params["delay"].value = 50
        mc.chaos.duration.value = 30
        mc.chaos.buttons["delay"].click()
        faults = lab.chaos.faults()
        assert list(faults.type) == ["DELAY"] and faults.params[0] == "delay_ms=50"
        wait_until(lambda: len(mc.chaos.active.children) == 1, WAIT_S, "the active fault listed")
        assert "s left" in mc.chaos.active.children[0].children[1].value
        assert any(m[1] == "fault" for m in mc.markers)
        mc.chaos.active.children[0].children[0].click()  # its clear button
        assert lab.chaos.faults().empty
        mc.chaos.params["error_inject"].value = 0.2
        mc.inject("error_inject")
        mc.chaos.clear_all.click()
        assert lab.chaos.faults().empty

        # an error shows in the view, not in a console
        mc.chaos.instance.options = [*mc.chaos.instance.options, "calculator-9"]
        mc.chaos.instance.value = "calculator-9"
        mc.act("inject crash", lambda: mc.inject("crash"))
        assert "calculator-9" in mc.errors.value
        mc.chaos.instance.value = "(all)"

        # log tail: follow a correlation id
        client = CalculatorLab(lab).client()
        client.add(2, 3, correlation_id="req-mc-1")
        wait_until(lambda: "req-mc-1" in mc.logs.ids.options, WAIT_S, "the id listed")
        mc.logs.ids.value = "req-mc-1"
        assert mc.logs.filters()["correlation_id"] == "req-mc-1"
        client.add(4, 4, correlation_id="req-mc-2")
        client.add(5, 5, correlation_id="req-mc-1")
        wait_until(lambda: "Add(5" in mc.logs.out.value, WAIT_S, "the followed id's next call")
        assert "req-mc-2" not in mc.logs.out.value and "Add(4" not in mc.logs.out.value
        client.close()

        # reset -> back to the lab file
        lab.scale("calculator", 3)
        lab.config.set("calculator", "max_connections", 2, "int")
        lab.chaos.inject("calculator", "delay", duration_s=60, delay_ms=10)
        mc.reset_button.click()
        mc._reset_thread.join(60)
        assert sorted(lab.status().instance) == clean and set(lab.status().state) == {"RUNNING"}
        assert lab.chaos.faults().empty and lab.config.values().empty
        assert "reset:" in mc.status_line.value
    finally:
        mc.close()
    assert not mc.running and not mc.probe.running


def back_or_fatal(lab, old: int) -> bool:
    r = lab.status().set_index("instance").loc["calculator-2"]  # one read: pid is NA between processes
    return r.state == "FATAL" or (r.state == "RUNNING" and not pd.isna(r.pid) and int(r.pid) != old)


def test_a_fatal_tile_offers_start_again_and_it_brings_the_instance_back(lab_factory) -> None:
    lab = lab_factory("mission-control")
    mc = MissionControl(lab)  # no probe: the chart shows load and markers only
    mc.follow()
    try:
        for _ in range(10):  # crash calculator-2 past its start limit (3 starts in 60 s)
            row = lab.status().set_index("instance").loc["calculator-2"]
            if row.state == "FATAL":
                break
            if row.state == "RUNNING":
                old = int(row.pid)
                lab.kill("calculator", "calculator-2")
                wait_until(lambda old=old: back_or_fatal(lab, old), WAIT_S, "calculator-2 back or FATAL")
            else:
                time.sleep(0.2)
        wait_until(lambda: mc.tiles.colors().get("calculator-2") == "fatal", WAIT_S, "a FATAL tile")
        tile = mc.tiles.tiles["calculator-2"]
        assert tile.start_again.layout.display is None and tile.buttons.layout.display == "none"
        tile.start_again.click()
        lab.wait_for(
            lambda: lab.status().set_index("instance").loc["calculator-2"].state == "RUNNING",
            WAIT_S,
            "running",
        )
        wait_until(lambda: mc.tiles.colors().get("calculator-2") == "green", WAIT_S, "a green tile again")
        assert tile.start_again.layout.display == "none"
    finally:
        mc.close()
