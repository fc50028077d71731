"""A child's exit is seen at once even while a process it started still holds its output pipes.

Python 3.11's ``asyncio`` ``Process.wait()`` returns only once every pipe to the child is closed.
A service that starts a helper without redirecting its output (``subprocess.Popen([...])``: the
helper inherits stdout and stderr) would hide its own death from the supervisor for as long as the
helper lives: no exit event, no restart, the instance shown RUNNING with a dead pid.
"""

from __future__ import annotations

from pathlib import Path

import psutil
from procs.labd import LabDaemon, child, pid_alive, wait_until, write_lab

from runtime.v1 import supervisor_pb2 as pb

FAST = {"restart_delay_s": 0.3, "stop_grace_s": 1}


def test_sigkilled_child_is_restarted_and_its_grandchild_goes_with_it(tmp_path: Path, lab_dir: Path) -> None:
    config = write_lab(tmp_path, {"app": {"command": child("--spawn-grandchild"), **FAST}})
    with LabDaemon(lab_dir, config) as d:
        first = d.wait_state("app-1", pb.PROCESS_STATE_RUNNING)
        grandchildren = [c.pid for c in psutil.Process(first.pid).children()]
        assert grandchildren, "the test child did not start its grandchild"
        d.stub.SignalProcess(
            pb.SignalProcessRequest(service="app", instance_id="app-1", signal="SIGKILL"), timeout=5
        )

        def restarted() -> pb.ProcessInfo | None:
            p = d.processes()["app-1"]
            return p if p.state == pb.PROCESS_STATE_RUNNING and p.pid not in (0, first.pid) else None

        wait_until(restarted, 10, "app-1 running again under a new pid")
        exited = d.find_events("app-1", pb.PROCESS_EVENT_KIND_EXITED)
        assert exited and "killed by SIGKILL" in exited[-1].reason, exited
        wait_until(
            lambda: not [p for p in grandchildren if pid_alive(p)], 5, "the grandchild gone with its group"
        )
