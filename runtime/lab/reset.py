"""``lab.reset()``: bring a running lab back to what its lab file says, whatever a chapter did to it.

A chapter injects faults, runs load, sets config, scales, stops, freezes and crashes instances
past their start limit (FATAL). The next chapter should not inherit any of it, and a learner
should not have to delete files to get a clean lab. ``reset`` undoes each, in this order:

1. thaw (SIGCONT) every live instance, so a frozen one answers again; start every instance that
   is FATAL, STOPPED or EXITED (a manual start forgets the failures); wait until all run, so
   the services the next steps call answer;
2. clear every fault (the chaos service);
3. stop every running load test (the load generator);
4. delete every config value (DeleteConfig): consumers fall back to their schema defaults;
5. scale each service back to the ``instances`` of the lab file the supervisor runs;
6. wait until every instance is RUNNING (or SKIPPED: a missing toolchain stays missing).

A step whose service the lab does not run is skipped (a lab without chaos has no faults).

    report = lab.reset()
    print(report)        # "reset: 2 faults cleared, 1 load test stopped, 3 config keys deleted, ..."
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import yaml

from runtime.errors import LabError
from runtime.identity import CONFIG_GRPC_SERVICE, LOADGEN_GRPC_SERVICE
from runtime.lab.connection import call
from runtime.lab.load import TEST_ID_HEADER
from runtime.v1 import common_pb2, config_pb2, config_pb2_grpc, load_pb2_grpc, supervisor_pb2

if TYPE_CHECKING:
    from runtime.lab.lab import Lab

RESET_TIMEOUT_S = 30.0
RPC_TIMEOUT_S = 5.0
STARTABLE = ("FATAL", "STOPPED", "EXITED")
DEFAULT_INSTANCES = 1  # what the lab file's schema assumes when a service names none


@dataclass
class ResetReport:
    """What ``lab.reset()`` did, step by step."""

    faults_cleared: int = 0
    load_tests_stopped: int = 0
    config_keys_deleted: int = 0
    thawed: int = 0
    scaled: dict[str, tuple[int, int]] = field(default_factory=dict)  # service -> (from, to)
    started: list[str] = field(default_factory=list)  # instances started again (FATAL, STOPPED, ...)
    skipped: list[str] = field(default_factory=list)  # steps skipped: the lab does not run that service

    def lines(self) -> list[str]:
        """What was done, one line per step (the Reset lab button lists them).

        >>> ResetReport(faults_cleared=2, scaled={"calculator": (3, 2)}, started=["calculator-1"]).lines()
        ['faults cleared: 2', 'load tests stopped: 0', 'config keys deleted: 0', 'instances thawed: 0', \
'scaled back: calculator 3 -> 2', 'started again: calculator-1']
        """
        lines = [
            f"faults cleared: {self.faults_cleared}",
            f"load tests stopped: {self.load_tests_stopped}",
            f"config keys deleted: {self.config_keys_deleted}",
            f"instances thawed: {self.thawed}",
            f"scaled back: {self._scaled(' -> ')}",
            f"started again: {self._started()}",
        ]
        if self.skipped:
            lines.append(f"skipped: {', '.join(self.skipped)}")
        return lines

    def __str__(self) -> str:
        return (
            f"reset: {self.faults_cleared} faults cleared, {self.load_tests_stopped} load tests stopped, "
            f"{self.config_keys_deleted} config keys deleted, scaled: {self._scaled('->')}, "
            f"started again: {self._started()}"
        )

    def _scaled(self, arrow: str) -> str:
        return ", ".join(f"{s} {a}{arrow}{b}" for s, (a, b) in self.scaled.items()) or "none"

    def _started(self) -> str:
        return ", ".join(self.started) or "none"


def lab_file_instances(config_path: str | Path) -> dict[str, int]:
    """``{service: instances}`` as the lab file says (the supervisor validated it when it started)."""
    data = yaml.safe_load(Path(config_path).read_text()) or {}
    services = data.get("services") or {}
    return {name: int((spec or {}).get("instances", DEFAULT_INSTANCES)) for name, spec in services.items()}


def reset_lab(lab: Lab, timeout_s: float = RESET_TIMEOUT_S) -> ResetReport:
    """Bring ``lab`` back to its lab file's state (see the module docstring); returns the report.

    Raises:
        StartupError: an instance did not come back within ``timeout_s`` (with its last lines).
        LabNotRunning: the lab does not answer.
    """
    report = ResetReport()
    before = lab.status()
    for service, instance, state in zip(before.service, before.instance, before.state, strict=True):
        # First: the chaos, load and config services must answer the steps below.
        if state in ("RUNNING", "STARTING"):
            try:
                lab.kill(str(service), str(instance), signal="SIGCONT")
                report.thawed += 1
            except LabError:
                pass  # it exited in between: the supervisor restarts it
        elif state in STARTABLE:
            lab.start(str(service), str(instance))
            report.started.append(str(instance))
    status = lab.wait_ready(timeout_s)
    running = set(status.service)
    if "chaos" in running:
        report.faults_cleared = lab.chaos.clear()
    else:
        report.skipped.append("faults (no chaos service)")
    if "loadgen" in running:
        report.load_tests_stopped = _stop_load_tests(lab)
    else:
        report.skipped.append("load tests (no loadgen service)")
    if "config" in running:
        report.config_keys_deleted = _delete_config(lab)
    else:
        report.skipped.append("config (no config service)")
    info = lab._call("GetLabInfo", supervisor_pb2.GetLabInfoRequest())
    for service, n in lab_file_instances(info.config_path).items():
        have = int((status.service == service).sum())
        if have != n:
            lab.scale(service, n)
            report.scaled[service] = (have, n)
    lab.wait_ready(timeout_s)  # scaling down has settled already: ScaleService waits for it
    return report


def _stop_load_tests(lab: Lab) -> int:
    stub = load_pb2_grpc.LoadGeneratorServiceStub(lab._channel(LOADGEN_GRPC_SERVICE))
    stopped = 0
    for test_id in lab.load.tests().test_id:
        try:
            stub.StopLoad(common_pb2.Empty(), metadata=((TEST_ID_HEADER, test_id),), timeout=RPC_TIMEOUT_S)
            stopped += 1
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.NOT_FOUND:  # it ended by itself in between
                raise
    return stopped


def _delete_config(lab: Lab) -> int:
    stub = config_pb2_grpc.ConfigServiceStub(lab._channel(CONFIG_GRPC_SERVICE))
    every = config_pb2.ConfigKey(namespace="*")  # DeleteConfig's explicit "every namespace"
    ack: Any = call(stub.DeleteConfig, every, "config service", "deleting config")
    return int(ack.deleted)
