"""Finding, starting, attaching to and stopping the supervisor daemon of a lab directory.

There is one daemon per lab dir, guarded by its file lock ``<lab dir>/supervisor.lock`` and
described by ``<lab dir>/supervisor.json`` (pid, address). Starting is race-free: two callers may
both spawn a daemon, the lock lets one win, and the loser's caller attaches to the winner.

The lock, not the json file, is the truth about who holds a lab. The daemon writes the json file
atomically and rewrites it if it is damaged, but a caller may still meet an unreadable or stale
one (a crash mid-write by an older version, an editor, a full disk):

    supervisor.json  lock held by   meaning                         what callers do
    ---------------  -------------  ------------------------------  --------------------------------
    readable, answers  the daemon   a running lab                   attach
    unreadable/stale   nobody       a lab that died                 start a new one
    unreadable/stale   pid N        a daemon starting or repairing  wait up to HOLDER_WAIT_S, then
                                    its file, or a hung daemon      say "pid N holds the lab ... stop
                                                                    it with runtime-lab down"

``stop_holder`` stops a lab by the pid its lock names, so ``runtime-lab down`` works whatever the
json file says. Every wait here sleeps between checks (POLL_S); nothing spins.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from runtime.client import auth
from runtime.errors import LabNotRunning, StartupError
from runtime.identity import EXIT_LOCKED, INFO_FILE, LOCK_FILE
from runtime.identity import SUPERVISOR_LOG_FILE as LOG_FILE
from runtime.v1 import supervisor_pb2, supervisor_pb2_grpc

SPAWN_TIMEOUT_S = 15.0
POLL_S = 0.05  # between checks while waiting for a daemon: a stat and a small read, 20 times a second
# A lock holder without a readable supervisor.json is starting (it publishes within a second) or
# repairing the file (it checks every second); longer than this and it is hung.
HOLDER_WAIT_S = 10.0
RPC_TIMEOUT_S = 3.0
SHUTDOWN_WAIT_S = 30.0
KILL_WAIT_S = 5.0
DAEMON_MODULE = "runtime.supervisor"


@dataclass(frozen=True)
class DaemonInfo:
    """What supervisor.json says about the running daemon."""

    pid: int
    address: str
    token: str = ""  # the lab's token (<lab dir>/token): every call to the daemon sends it


def read_info(lab_dir: Path) -> DaemonInfo | None:
    """The daemon described in supervisor.json, or None if there is no (readable) file."""
    try:
        data = json.loads((lab_dir / INFO_FILE).read_text())
        return DaemonInfo(pid=int(data["pid"]), address=str(data["address"]), token=auth.read_token(lab_dir))
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


def supervisor_stub(
    address: str, token: str | None = None
) -> tuple[grpc.Channel, supervisor_pb2_grpc.SupervisorServiceStub]:
    """A sync channel and stub for the daemon at ``address``, sending the lab's ``token``."""
    channel = auth.insecure_channel(address, token=token)
    return channel, supervisor_pb2_grpc.SupervisorServiceStub(channel)


def probe(info: DaemonInfo) -> supervisor_pb2.GetLabInfoResponse | None:
    """Ask the daemon who it is; None if it does not answer."""
    if not pid_alive(info.pid):
        return None
    channel, stub = supervisor_stub(info.address, info.token)
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


def find_running(lab_dir: Path, wait_s: float | None = None) -> DaemonInfo | None:
    """The live, answering daemon of ``lab_dir``, or None when nobody holds the lab.

    Waits out a daemon that is shutting down (attaching would hand back a dying lab), and waits up
    to ``wait_s`` (default HOLDER_WAIT_S) for a lock holder whose supervisor.json is missing,
    unreadable or stale.

    Raises:
        StartupError: a process holds the lab's lock but publishes no answering daemon within
            ``wait_s``; the message names its pid and how to stop it.
    """
    deadline = time.monotonic() + (HOLDER_WAIT_S if wait_s is None else wait_s)
    while True:
        info = read_info(lab_dir)
        answer = probe(info) if info is not None else None
        if info is not None and answer is not None:
            if not answer.shutting_down:
                return info
            wait_for_exit(info.pid, SHUTDOWN_WAIT_S)
        holder = lock_holder(lab_dir)
        if holder is None:
            return None
        if time.monotonic() >= deadline:
            raise held_error(lab_dir, holder, info)
        time.sleep(POLL_S)


def held_error(lab_dir: Path, holder: int, info: DaemonInfo | None) -> StartupError:
    """The error for a lab whose lock is held by a daemon nobody can reach."""
    if info is None:
        problem = f"its {INFO_FILE} is missing or unreadable"
    elif info.pid != holder:
        problem = f"its {INFO_FILE} names pid {info.pid} instead"
    else:
        problem = f"it does not answer at {info.address}"
    return StartupError(
        "supervisor",
        f"pid {holder} holds the lab in {lab_dir} (its {LOCK_FILE} says so) but {problem} after "
        f"{HOLDER_WAIT_S:.0f} s; it may be hung: stop it with `runtime-lab down --lab-dir {lab_dir}`",
        tail(lab_dir / LOG_FILE, 5),
    )


def lock_holder(lab_dir: Path) -> int | None:
    """The pid holding ``<lab dir>/supervisor.lock``, or None when nobody holds it.

    The kernel's lock table (/proc/locks, matched on the lock file's inode) says whether the lock
    is held and by whom; the pid the daemon wrote into the file is the fallback when the table
    names no pid we can see. It never takes the lock itself: even a brief probe lock could make a
    daemon that is starting at that moment believe the lab is taken.
    """
    path = lab_dir / LOCK_FILE
    try:
        ino = path.stat().st_ino
        with open("/proc/locks", encoding="ascii", errors="replace") as fh:
            table = fh.read()
    except OSError:
        return None
    held = False
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:10002561 0 EOF"; waiters have "->" after the number
        if len(fields) < 6 or fields[1] != "FLOCK" or fields[5].rsplit(":", 1)[-1] != str(ino):
            continue
        held = True
        pid = int(fields[4]) if fields[4].isdigit() else 0
        if pid > 0 and pid_alive(pid):
            return pid
    if not held:
        return None
    written = _pid_in_lock_file(path)
    return written if written and pid_alive(written) else None


def _pid_in_lock_file(path: Path) -> int:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return 0
    return int(text) if text.isdigit() else 0


def is_lab_daemon(pid: int, lab_dir: Path) -> bool:
    """True if ``pid`` runs ``python -m runtime.supervisor --lab-dir <lab_dir>``.

    Checked before signalling a pid taken from a file: a pid recycled for some other program of
    the user must never receive the lab's SIGTERM.
    """
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    if DAEMON_MODULE not in args or "--lab-dir" not in args:
        return False
    i = args.index("--lab-dir")
    if i + 1 >= len(args):
        return False
    return os.path.realpath(os.path.join(cwd, args[i + 1])) == os.path.realpath(lab_dir)


def stop_holder(lab_dir: Path, timeout_s: float = SHUTDOWN_WAIT_S) -> int | None:
    """Stop the daemon that holds ``lab_dir``'s lock by its pid; returns the pid (None: nobody).

    For a lab nobody can reach through supervisor.json. SIGTERM lets the daemon stop its services
    in order; a daemon that does not exit within ``timeout_s`` (hung, or stopped with SIGSTOP)
    gets SIGKILL, and its group keeper then kills every lab process group.

    Raises:
        LabNotRunning: the lock is held by a process that is not this lab's supervisor.
    """
    pid = lock_holder(lab_dir)
    if pid is None:
        return None
    if not is_lab_daemon(pid, lab_dir):
        raise LabNotRunning(
            f"pid {pid} holds {lab_dir / LOCK_FILE} but is not a supervisor of this lab; "
            "not signalling it. Stop that process yourself, then run `runtime-lab up`"
        )
    os.kill(pid, signal.SIGTERM)
    if not wait_for_exit(pid, timeout_s):
        os.kill(pid, signal.SIGCONT)  # a stopped daemon cannot even die before it runs again
        os.kill(pid, signal.SIGKILL)
        wait_for_exit(pid, KILL_WAIT_S)
    return pid


def _reap_in_background(proc: subprocess.Popen[bytes]) -> None:
    # The daemon is our child until we exit: reap it when it stops so it never lingers as a zombie.
    threading.Thread(target=proc.wait, name=f"lab-daemon-reaper-{proc.pid}", daemon=True).start()


def _start_daemon(
    lab_dir: Path, config: Path, linger_s: float | None, detach: bool
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", DAEMON_MODULE, "--lab-dir", str(lab_dir), "--config", str(config)]
    if linger_s is not None:
        cmd += ["--linger-s", str(linger_s)]
    # 0600 from the start: the daemon's umask only covers the files it creates itself.
    with open(os.open(lab_dir / LOG_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as log:
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
    return proc


def find_or_spawn(
    lab_dir: Path, config: Path, linger_s: float | None, *, detach: bool = True
) -> tuple[DaemonInfo, bool]:
    """The running daemon of ``lab_dir``, or a new one; and whether this call started it.

    Whoever started the lab may stop it again when its start fails (``Lab.up``); a caller that
    attached to someone else's lab must not.

    Raises:
        StartupError: as ``spawn`` and ``find_running``.
    """
    info = find_running(lab_dir)
    if info is not None:
        return info, False
    return _spawn(lab_dir, config, linger_s, detach)


def spawn(lab_dir: Path, config: Path, linger_s: float | None, *, detach: bool = True) -> DaemonInfo:
    """Start a daemon for ``lab_dir`` (or find the one that won the race) and wait for its address.

    The daemon runs in its own session, so a notebook's Interrupt (SIGINT to the kernel's process
    group) never reaches it; it lives exactly as long as its leases say.

    Raises:
        StartupError: the daemon exited or did not publish its address in time, or another
            process holds the lab but cannot be reached.
    """
    return _spawn(lab_dir, config, linger_s, detach)[0]


def _spawn(lab_dir: Path, config: Path, linger_s: float | None, detach: bool) -> tuple[DaemonInfo, bool]:
    lab_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # owner only, like everything in it
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    proc = _start_daemon(lab_dir, config, linger_s, detach)
    while True:
        info = read_info(lab_dir)
        if info is not None and probe(info) is not None:
            return info, info.pid == proc.pid
        code = proc.poll()
        if code == EXIT_LOCKED:
            # Another daemon won the lock: attach to it. find_running waits for it to publish and
            # raises, naming its pid, if it never does.
            other = find_running(lab_dir)
            if other is not None:
                return other, False
            if time.monotonic() >= deadline:
                break
            proc = _start_daemon(lab_dir, config, linger_s, detach)  # the winner is gone already
        elif code is not None:
            raise StartupError(
                "supervisor", f"exited with code {code} before serving", tail(lab_dir / LOG_FILE)
            )
        if time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)  # on every path: this loop never spins
    raise StartupError(
        "supervisor", f"published no address within {SPAWN_TIMEOUT_S:.0f} s", tail(lab_dir / LOG_FILE)
    )


def attach_info(lab_dir: Path) -> DaemonInfo:
    """The running daemon of ``lab_dir``.

    Raises:
        LabNotRunning: nothing answers there; says how to start it.
        StartupError: a process holds the lab but cannot be reached (names its pid).
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
