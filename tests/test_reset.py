"""lab.reset() brings a lab with faults, running load, changed config, extra instances, a stopped
service and a FATAL instance back to its lab file's state; lab.restart() brings a FATAL one back."""

from __future__ import annotations

import pandas as pd
import pytest
from waiting import wait_until

from runtime.errors import ClientError
from runtime.lab import Lab

WAIT_S = 20.0


def crash_until_fatal(lab: Lab, instance: str) -> None:
    """SIGKILL ``instance`` each time it runs again until the start limit makes it FATAL."""

    def row():
        return lab.status().set_index("instance").loc[instance]

    for _ in range(10):
        if row().state == "FATAL":
            return
        old = lab.kill("calculator", instance)["pid"]

        def back_or_fatal(old: int = old) -> bool:
            r = row()  # one read: state and pid of the same moment (pid is NA between processes)
            return r.state == "FATAL" or (r.state == "RUNNING" and not pd.isna(r.pid) and int(r.pid) != old)

        wait_until(back_or_fatal, WAIT_S, f"{instance} running again or FATAL")
    raise AssertionError(f"{instance} never went FATAL")


def instances(lab: Lab) -> dict[str, str]:
    return dict(zip(lab.status().instance, lab.status().state, strict=True))


def test_reset_brings_the_lab_back_to_its_lab_file(lab_factory) -> None:
    lab = lab_factory("mission-control")
    clean = sorted(lab.status().instance)
    crash_until_fatal(lab, "calculator-2")
    assert instances(lab)["calculator-2"] == "FATAL"
    lab.scale("calculator", 3)  # calculator-2 stays FATAL; a new one beside it
    lab.wait_for(lambda: instances(lab)["calculator-3"] == "RUNNING", WAIT_S, "calculator-3")
    lab.chaos.inject("calculator", "delay", duration_s=120, delay_ms=300)
    lab.chaos.inject("calculator", "error_inject", error_rate=0.0)
    lab.config.set("calculator", "max_connections", 3, "int")
    lab.config.set("elsewhere", "colour", "blue")
    test = lab.load.start("calculator", rps=20, duration_s=60)
    lab.wait_for(lambda: len(lab.load.tests()) == 1, WAIT_S, "the load test listed")
    lab.stop("health")

    report = lab.reset()

    assert report.faults_cleared == 2 and report.load_tests_stopped == 1
    assert report.config_keys_deleted == 2
    assert report.scaled == {"calculator": (3, 2)}
    assert set(report.started) == {"calculator-2", "health-1"}
    status = lab.status()
    assert sorted(status.instance) == clean
    assert set(status.state) == {"RUNNING"}, status[["instance", "state"]]
    assert lab.chaos.faults().empty
    assert lab.load.tests().empty
    test.wait(5)
    assert lab.config.values().empty
    with pytest.raises(ClientError) as info:
        lab.config.get("calculator", "max_connections")
    assert info.value.code == "NOT_FOUND"
    assert "reset: 2 faults cleared, 1 load tests stopped, 2 config keys deleted" in str(report)
    # A second reset finds nothing to do.
    again = lab.reset()
    assert (again.faults_cleared, again.load_tests_stopped, again.config_keys_deleted) == (0, 0, 0)
    assert again.scaled == {} and again.started == []


def test_restart_brings_a_fatal_instance_back(lab_factory) -> None:
    lab = lab_factory("mission-control")
    crash_until_fatal(lab, "calculator-1")
    lab.restart("calculator", "calculator-1")
    row = lab.wait_restarted("calculator-1", old_pid=-1)
    assert row.state == "RUNNING"
    # The failure history is forgotten: one crash now restarts it instead of FATAL.
    old = int(row.pid)
    lab.kill("calculator", "calculator-1")
    assert lab.wait_restarted("calculator-1", old).state == "RUNNING"
