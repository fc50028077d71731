"""ChaosPanel's instance picker on a real lab: it lists the service's current instances (refreshed
when the lab scales) and the crash and latency buttons hit the picked instance only."""

from __future__ import annotations

from waiting import wait_until

from calculator.lab import CalculatorLab
from widgets.chaos_view import ChaosPanel

WAIT_S = 20.0


def pids(lab) -> dict[str, int]:
    status = lab.status("calculator").set_index("instance")
    return {i: int(p) for i, p in status.pid.items()}


def test_the_picked_instance_is_the_one_crashed_and_slowed(lab_factory) -> None:
    lab = lab_factory("mission-control")
    panel = ChaosPanel(lab, delay_ms=200, fault_s=30, probe=CalculatorLab(lab).latency_probe())
    panel.show()
    try:
        assert list(panel.instance.options) == ["(all)", "calculator-1", "calculator-2"]
        before = pids(lab)
        panel.instance.value = "calculator-2"
        panel.buttons["crash"].click()
        assert "calculator-2 crashed" in panel.status.value, panel.status.value
        lab.wait_restarted("calculator-2", before["calculator-2"])
        after = pids(lab)
        assert after["calculator-2"] != before["calculator-2"]
        assert after["calculator-1"] == before["calculator-1"]  # the other one untouched
        assert lab.status().set_index("instance").restarts["calculator-1"] == 0

        panel.buttons["delay"].click()
        faults = lab.chaos.faults()
        assert list(faults.instance) == ["calculator-2"] and list(faults.type) == ["DELAY"], faults
        assert "+200 ms on calculator-2" in panel.status.value
        panel.buttons["clear"].click()
        assert lab.chaos.faults().empty

        # the picker follows the lab: a third instance appears, and goes again on scale-down
        lab.scale("calculator", 3)
        wait_until(lambda: "calculator-3" in panel.instance.options, WAIT_S, "calculator-3 in the picker")
        panel.instance.value = "calculator-3"
        lab.scale("calculator", 2)
        wait_until(lambda: "calculator-3" not in panel.instance.options, WAIT_S, "calculator-3 gone")
        assert panel.instance.value == "(all)"  # a gone instance is never the target
        assert panel.errors.value == ""
    finally:
        panel.close()
