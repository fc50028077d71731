"""Proof that a test left no lab process and no listening port behind.

Used by the autouse fixture in conftest.py; tests can also call `lab_processes()` directly.
A lab process is one whose command line or environment names a lab directory (LAB_DIR) under
one of the given roots: the daemon carries ``--lab-dir`` in its argv, children carry LAB_DIR.
Only processes are looked at, never killed by name: cleanup kills by pid, and only ours.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

import psutil

SETTLE_S = 5.0


def lab_processes(roots: Iterable[str]) -> list[psutil.Process]:
    """Live processes that belong to a lab dir below any of `roots`."""
    roots = [os.path.realpath(r) for r in roots]
    me = os.getpid()
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        if proc.pid == me or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            cmd = " ".join(proc.info["cmdline"] or ())
            lab_dir = proc.environ().get("LAB_DIR", "")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if any(r in cmd or (lab_dir and os.path.realpath(lab_dir).startswith(r)) for r in roots):
            found.append(proc)
    return found


def listening_ports(roots: Iterable[str] = ()) -> set[tuple[int, int]]:
    """(pid, port) of TCP sockets listening in processes of ours.

    Ours: this process, its descendants, and lab processes under ``roots``; other people's
    processes on the same machine (a second test run, a notebook) are none of the test's business.
    """
    me = psutil.Process()
    pids = {me.pid}
    try:
        pids |= {c.pid for c in me.children(recursive=True)}
    except psutil.Error:
        pass
    pids |= {p.pid for p in lab_processes(roots)}
    out = set()
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            out.add((conn.pid, conn.laddr.port))
    return out


def wait_until_gone(roots: Iterable[str], before_ports: set[tuple[int, int]], timeout_s: float = SETTLE_S) -> str:
    """Wait for lab processes and new listening ports to disappear; describe what is left."""
    roots = list(roots)
    deadline = time.monotonic() + timeout_s
    while True:
        procs = lab_processes(roots)
        ports = listening_ports(roots) - before_ports
        if not procs and not ports:
            return ""
        if time.monotonic() > deadline:
            lines = [f"pid {p.pid}: {' '.join(p.cmdline())}" for p in procs if p.is_running()]
            lines += [f"port {port} still listening (pid {pid})" for pid, port in sorted(ports)]
            # Clean up after the failing test by pid, so the next test starts clean.
            for p in procs:
                try:
                    p.kill()
                except psutil.Error:
                    pass
            return "\n".join(lines)
        time.sleep(0.05)
