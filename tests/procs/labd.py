"""Test harness for the supervisor daemon: write a lab.yaml, run the daemon, watch its events.

Not a test module: imported by tests/test_supervisor_*.py as ``from procs.labd import ...``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import yaml

from runtime.client import auth
from runtime.v1 import supervisor_pb2 as pb
from runtime.v1 import supervisor_pb2_grpc as pb_grpc

PROCS = Path(__file__).resolve().parent
ROOT = PROCS.parent.parent
CHILD = str(PROCS / "child.py")
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 20.0
WAIT_S = 15.0


def child(*flags: str) -> list[str]:
    """The argv of the test child with ``flags``."""
    return ["python", CHILD, *flags]


def write_lab(folder: Path, services: dict[str, Any], jobs: dict[str, Any] | None = None, **top: Any) -> Path:
    """Write ``folder/lab.yaml`` and return its path."""
    data: dict[str, Any] = {**top, "services": services}
    if jobs:
        data["jobs"] = jobs
    path = folder / "lab.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def wait_until(predicate: Callable[[], Any], timeout_s: float = WAIT_S, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


class LabDaemon:
    """One supervisor daemon subprocess plus a gRPC stub and a live event collector."""

    def __init__(self, lab_dir: Path, config: Path, linger_s: float | None = 60.0) -> None:
        self.lab_dir = lab_dir
        self.config = config
        self.linger_s = linger_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.events: list[pb.ProcessEvent] = []
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._watch: Any = None
        self._thread: threading.Thread | None = None
        self.log_path = lab_dir.parent / "daemon.log"

    def argv(self) -> list[str]:
        """The daemon's command line."""
        argv = [
            sys.executable,
            "-m",
            "runtime.supervisor",
            "--lab-dir",
            str(self.lab_dir),
            "--config",
            str(self.config),
        ]
        if self.linger_s is not None:
            argv += ["--linger-s", str(self.linger_s)]
        return argv

    def start(self) -> LabDaemon:
        """Start the daemon and wait for supervisor.json and a working channel."""
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        info_path = self.lab_dir / "supervisor.json"
        wait_until(
            lambda: info_path.exists() or self.proc.poll() is not None, START_TIMEOUT_S, "supervisor.json"
        )
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
        self.info = json.loads(info_path.read_text(encoding="utf-8"))
        # The daemon writes its token before supervisor.json: every call must carry it.
        self.token = auth.read_token(self.lab_dir)
        self._channel = auth.insecure_channel(self.info["address"], token=self.token)
        self.stub = pb_grpc.SupervisorServiceStub(self._channel)
        self._watch = self.stub.WatchProcessEvents(pb.WatchProcessEventsRequest(replay=5000))
        self._thread = threading.Thread(target=self._collect, name="test-event-collector", daemon=True)
        self._thread.start()
        return self

    def _collect(self) -> None:
        try:
            for event in self._watch:
                with self._lock:
                    self.events.append(event)
        except grpc.RpcError:
            pass

    def log(self) -> str:
        """The daemon's own output so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def processes(self, service: str = "") -> dict[str, pb.ProcessInfo]:
        """instance_id -> ProcessInfo."""
        reply = self.stub.ListProcesses(pb.ListProcessesRequest(service=service), timeout=5)
        return {p.instance_id: p for p in reply.processes}

    def wait_state(self, instance_id: str, state: int, timeout_s: float = WAIT_S) -> pb.ProcessInfo:
        """Wait until ``instance_id`` is in ``state``; returns its ProcessInfo."""

        def check() -> pb.ProcessInfo | None:
            info = self.processes().get(instance_id)
            return info if info is not None and info.state == state else None

        return wait_until(check, timeout_s, f"{instance_id} in {pb.ProcessState.Name(state)}")

    def find_events(self, instance_id: str = "", kind: int = 0) -> list[pb.ProcessEvent]:
        """Events seen so far, filtered."""
        with self._lock:
            return [
                e
                for e in self.events
                if (not instance_id or e.instance_id == instance_id) and (not kind or e.kind == kind)
            ]

    def wait_event(
        self, instance_id: str, kind: int, count: int = 1, timeout_s: float = WAIT_S
    ) -> list[pb.ProcessEvent]:
        """Wait until ``count`` events of ``kind`` for ``instance_id`` were seen."""
        what = f"{count} x {pb.ProcessEventKind.Name(kind)} of {instance_id}"
        return wait_until(
            lambda: (e := self.find_events(instance_id, kind)) and len(e) >= count and e, timeout_s, what
        )

    def wait_exit(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """Wait for the daemon process to exit; returns its exit code."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout_s)

    def stop(self) -> None:
        """Shutdown over gRPC (kill by pid if that fails), then close everything."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stub.Shutdown(pb.ShutdownRequest(reason="test teardown"), timeout=5)
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except (grpc.RpcError, subprocess.TimeoutExpired):
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        if self._watch is not None:
            self._watch.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._channel is not None:
            self._channel.close()

    def __enter__(self) -> LabDaemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
