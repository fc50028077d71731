"""Finding, starting and attaching to the supervisor daemon of a lab directory.

There is one daemon per lab dir, guarded by its file lock and described by
``<lab dir>/supervisor.json`` (pid, address). Starting is race-free: two callers may both spawn
a daemon, the lock lets one win, and the loser's caller attaches to the winner.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from runtime.errors import LabNotRunning, StartupError
from runtime.identity import EXIT_LOCKED, INFO_FILE
from runtime.identity import SUPERVISOR_LOG_FILE as LOG_FILE
from runtime.v1 import supervisor_pb2, supervisor_pb2_grpc

SPAWN_TIMEOUT_S = 15.0
POLL_S = 0.02
RPC_TIMEOUT_S = 3.0
SHUTDOWN_WAIT_S = 30.0


@dataclass(frozen=True)
class DaemonInfo:
    """What supervisor.json says about the running daemon."""

    pid: int
    address: str


def read_info(lab_dir: Path) -> DaemonInfo | None:
    """The daemon described in supervisor.json, or None if there is no (readable) file."""
    try:
        data = json.loads((lab_dir / INFO_FILE).read_text())
        return DaemonInfo(pid=int(data["pid"]), address=str(data["address"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (and is not a zombie we could reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def supervisor_stub(address: str) -> tuple[grpc.Channel, supervisor_pb2_grpc.SupervisorServiceStub]:
    """A sync channel and stub for the daemon at ``address``."""
    channel = grpc.insecure_channel(address)
    return channel, supervisor_pb2_grpc.SupervisorServiceStub(channel)


def probe(info: DaemonInfo) -> supervisor_pb2.GetLabInfoResponse | None:
    """Ask the daemon who it is; None if it does not answer."""
    if not pid_alive(info.pid):
        return None
    channel, stub = supervisor_stub(info.address)
    try:
        return stub.GetLabInfo(supervisor_pb2.GetLabInfoRequest(), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError:
        return None
    finally:
        channel.close()


def wait_for_exit(pid: int, timeout_s: float) -> bool:
    """Wait until ``pid`` is gone; True if it went."""
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True


def find_running(lab_dir: Path) -> DaemonInfo | None:
    """The live, answering daemon of ``lab_dir``; waits out one that is shutting down."""
    info = read_info(lab_dir)
    if info is None:
        return None
    answer = probe(info)
    if answer is None:
        return None
    if answer.shutting_down:
        # Attaching to a lab that is stopping would hand back a dying lab: wait, then start fresh.
        wait_for_exit(info.pid, SHUTDOWN_WAIT_S)
        return None
    return info


def _reap_in_background(proc: subprocess.Popen[bytes]) -> None:
    # The daemon is our child until we exit: reap it when it stops so it never lingers as a zombie.
    threading.Thread(target=proc.wait, name=f"lab-daemon-reaper-{proc.pid}", daemon=True).start()


def spawn(lab_dir: Path, config: Path, linger_s: float | None, *, detach: bool = True) -> DaemonInfo:
    """Start a daemon for ``lab_dir`` (or find the one that won the race) and wait for its address.

    The daemon runs in its own session, so a notebook's Interrupt (SIGINT to the kernel's process
    group) never reaches it; it lives exactly as long as its leases say.

    Raises:
        StartupError: the daemon exited or did not publish its address in time.
    """
    lab_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "runtime.supervisor", "--lab-dir", str(lab_dir), "--config", str(config)]
    if linger_s is not None:
        cmd += ["--linger-s", str(linger_s)]
    log_path = lab_dir / LOG_FILE
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=detach,
            close_fds=True,
            cwd=str(config.parent),
        )
    _reap_in_background(proc)
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    while time.monotonic() < deadline:
        info = read_info(lab_dir)
        if info is not None and pid_alive(info.pid) and probe(info) is not None:
            return info
        code = proc.poll()
        if code is not None:
            if code == EXIT_LOCKED:
                other = find_running(lab_dir)
                if other is not None:
                    return other
                continue
            raise StartupError("supervisor", f"exited with code {code} before serving", tail(log_path))
        time.sleep(POLL_S)
    raise StartupError("supervisor", f"published no address within {SPAWN_TIMEOUT_S:.0f} s", tail(log_path))


def attach_info(lab_dir: Path) -> DaemonInfo:
    """The running daemon of ``lab_dir``.

    Raises:
        LabNotRunning: nothing answers there; says how to start it.
    """
    info = find_running(lab_dir)
    if info is None:
        raise LabNotRunning(f"no lab is running in {lab_dir}; start one with Lab.up() or `runtime-lab up`")
    return info


def tail(path: Path, lines: int = 15) -> list[str]:
    """The last lines of a text file (empty if it cannot be read)."""
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []
