"""Behind ``Lab.up`` and ``Lab.attach``: one handle per lab dir, when a lab counts as started,
and what becomes of the lab when it does not start.

One handle per lab dir per process: re-running ``Lab.up()`` in a cell returns the same handle
instead of piling up leases; a handle whose daemon is gone is closed and forgotten.

Ready is a pure decision over the supervisor's process list (tested without a lab):

    every instance RUNNING or SKIPPED (its ``requires:`` are missing: it will not run)  -> ready
    one instance FATAL (start limit hit) or EXITED (its policy keeps it down)         -> failed now
    the wait's time is up                                                             -> failed
    anything else                                                                     -> keep waiting
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from runtime.errors import LabError, StartupError
from runtime.lab import launcher
from runtime.lab.frames import enum_label
from runtime.v1 import supervisor_pb2

if TYPE_CHECKING:
    from runtime.lab.lab import Lab

READY_STATES = (supervisor_pb2.PROCESS_STATE_RUNNING, supervisor_pb2.PROCESS_STATE_SKIPPED)
# FATAL: the start limit was hit; EXITED: its restart policy says it stays down.
DEAD_STATES = (supervisor_pb2.PROCESS_STATE_FATAL, supervisor_pb2.PROCESS_STATE_EXITED)
NO_PROCESSES = "lab"  # the "instance" a failure names when the lab listed none

_handles: dict[Path, Lab] = {}
_handles_lock = threading.Lock()


def all_ready(procs: Sequence[supervisor_pb2.ProcessInfo]) -> bool:
    """True when the lab lists processes and every one is RUNNING or SKIPPED."""
    return bool(procs) and all(p.state in READY_STATES for p in procs)


def startup_failure(
    procs: Sequence[supervisor_pb2.ProcessInfo], *, timed_out: bool, timeout_s: float
) -> tuple[str, str] | None:
    """``(instance, reason)`` when waiting is over without success; None: ready, or wait on.

    >>> from runtime.v1.supervisor_pb2 import ProcessInfo, PROCESS_STATE_FATAL, PROCESS_STATE_STARTING
    >>> startup_failure([ProcessInfo(instance_id="x-1", state=PROCESS_STATE_FATAL, last_exit_reason="exit 7")],
    ...                 timed_out=False, timeout_s=30)
    ('x-1', 'is FATAL: exit 7')
    >>> startup_failure([ProcessInfo(instance_id="x-1", state=PROCESS_STATE_STARTING)], timed_out=False, timeout_s=30)
    >>> startup_failure([], timed_out=True, timeout_s=30)
    ('lab', 'listed no processes within 30 s')
    """
    pending = [p for p in procs if p.state not in READY_STATES]
    dead = [p for p in pending if p.state in DEAD_STATES]
    if dead:
        p = dead[0]
        return p.instance_id, f"is {_state(p)}: {p.last_exit_reason}"
    if not timed_out or (procs and not pending):
        return None
    if not pending:
        return NO_PROCESSES, f"listed no processes within {timeout_s:.0f} s"
    p = pending[0]
    return (
        p.instance_id,
        f"not ready within {timeout_s:.0f} s (state {_state(p)}; {p.last_exit_reason or 'no exit yet'})",
    )


def _state(p: supervisor_pb2.ProcessInfo) -> str:
    return enum_label(supervisor_pb2.ProcessState, p.state, "PROCESS_STATE_")


def live_handle(lab_dir: Path) -> Lab | None:
    """This process's handle on the lab in ``lab_dir`` if its daemon still answers (else forget it)."""
    with _handles_lock:
        lab = _handles.get(lab_dir)
    if (
        lab is not None
        and launcher.pid_alive(lab.pid)
        and launcher.probe(launcher.DaemonInfo(lab.pid, lab.address, lab.token))
    ):
        return lab
    if lab is not None:
        lab._close_channels()
    return None


def register(lab: Lab) -> Lab:
    """Remember ``lab`` as this process's handle on its lab dir; returns it."""
    with _handles_lock:
        _handles[lab.lab_dir] = lab
    return lab


def forget(lab: Lab) -> None:
    """Drop ``lab`` from the registry (if it is still the handle for its lab dir)."""
    with _handles_lock:
        if _handles.get(lab.lab_dir) is lab:
            del _handles[lab.lab_dir]


def failed_up(lab: Lab, err: StartupError, started: bool) -> StartupError:
    """Clean up after a failed ``up`` and say in the error what became of the lab.

    A lab this call started is stopped again: the learner who reads "calculator-1 is FATAL"
    fixes it and runs ``up`` again, and must not meet half a lab holding ports, nor (after
    ``runtime-lab up``) a persistent lease keeping that half running unseen. The error keeps
    the failing service's last lines; its full output stays in the lab dir's logs. A lab that
    was running before this call belongs to whoever started it: it keeps running, this handle
    only gives back its own lease, and the error says how to bring a FATAL or EXITED instance
    back (``recovery_hint``) or stop the lab.
    """
    if started:
        try:
            lab.down()
            outcome = f"the lab this call started in {lab.lab_dir} was stopped again"
        except (LabError, grpc.RpcError) as exc:
            outcome = f"stopping the lab it started failed ({exc}); stop it with `runtime-lab down`"
    else:
        lab.close()
        hint = recovery_hint(err)
        outcome = (
            f"the lab in {lab.lab_dir} was running before and keeps running; "
            + (f"{hint}; or " if hint else "")
            + "stop it with `runtime-lab down` or Lab.down()"
        )
    return StartupError(err.service, f"{err.reason}; {outcome}", err.last_lines)


def recovery_hint(err: StartupError) -> str:
    """How to bring a running lab back when ``err`` says an instance is down for good, else "".

    After five quick kills an instance is FATAL (its start limit) and every later ``Lab.up()``
    on that lab fails; the learner must read the way back in the error, not delete files.

    >>> recovery_hint(StartupError("calculator-1", "is FATAL: killed by SIGKILL"))
    "bring it back with `Lab.attach().reset()` (the whole lab back to its lab file) or \
`Lab.attach().restart('calculator', 'calculator-1')` (that instance only), then run Lab.up() again"
    >>> recovery_hint(StartupError("calculator-1", "not ready within 30 s (state STARTING; no exit yet)"))
    ''
    """
    if not any(err.reason.startswith(f"is {state}") for state in ("FATAL", "EXITED")):
        return ""
    service = err.service.rsplit("-", 1)[0]  # instance ids are <service>-<n>
    return (
        "bring it back with `Lab.attach().reset()` (the whole lab back to its lab file) or "
        f"`Lab.attach().restart({service!r}, {err.service!r})` (that instance only), then run Lab.up() again"
    )


def failed_again(err: StartupError) -> StartupError:
    """``err`` from this process's live handle (``Lab.up()`` run again), with the way back added."""
    hint = recovery_hint(err)
    if not hint:
        return err
    return StartupError(err.service, f"{err.reason}; the lab keeps running; {hint}", err.last_lines)
