"""The daemon as a process: lock, supervisor.json, shutdown paths, parent death, leases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from procs.labd import PROCS, ROOT, LabDaemon, child, pid_alive, wait_until, write_lab

from runtime.identity import ENV_TOKEN
from runtime.v1 import supervisor_pb2 as pb

FAST = {"restart_delay_s": 0.3, "stop_grace_s": 1}


def _lab_with_two(tmp_path: Path, *app_flags: str) -> Path:
    return write_lab(
        tmp_path,
        {
            "base": {"command": child(), **FAST},
            "app": {"command": child(*app_flags), "instances": 2, "depends_on": {"base": "ready"}, **FAST},
        },
    )


def _tree_pids(daemon: LabDaemon) -> set[int]:
    pids = {p.pid for p in daemon.processes().values() if p.pid}
    for pid in list(pids):
        pids.update(c.pid for c in psutil.Process(pid).children(recursive=True))
    return pids


def test_info_file_lock_and_clean_shutdown(tmp_path: Path, lab_dir: Path) -> None:
    config = _lab_with_two(tmp_path, "--spawn-grandchild")
    with LabDaemon(lab_dir, config) as d:
        info = json.loads((lab_dir / "supervisor.json").read_text(encoding="utf-8"))
        assert info["pid"] == d.proc.pid and info["address"].startswith("127.0.0.1:")
        assert info["lab_dir"] == str(lab_dir) and info["config"] == str(config)
        assert info["project_root"] == str(tmp_path) and info["started_at"] > 0
        lab = d.stub.GetLabInfo(pb.GetLabInfoRequest(), timeout=5)
        assert (lab.pid, lab.address, lab.project_root, lab.linger_s) == (
            d.proc.pid,
            info["address"],
            str(tmp_path),
            60,
        )
        for iid in ("base-1", "app-1", "app-2"):
            d.wait_state(iid, pb.PROCESS_STATE_RUNNING)
        pids = _tree_pids(d)
        assert len(pids) == 5  # base, two apps, two grandchildren

        second = subprocess.run(
            LabDaemon(lab_dir, config).argv(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert second.returncode == 3
        assert f"another supervisor runs for {lab_dir} (pid {d.proc.pid})" in second.stderr

        d.stub.Shutdown(pb.ShutdownRequest(reason="test"), timeout=5)
        assert d.wait_exit() == 0
        assert not (lab_dir / "supervisor.json").exists()
        assert not [p for p in pids if pid_alive(p)]
        # Stopped in reverse dependency order: both apps before the base.
        stopping = [
            e.instance_id for e in d.find_events(kind=pb.PROCESS_EVENT_KIND_STOPPING) if e.instance_id
        ]
        assert stopping.index("base-1") > max(stopping.index("app-1"), stopping.index("app-2"))
    # The lock is free again: a new daemon can start for the same lab dir.
    with LabDaemon(lab_dir, config) as again:
        again.wait_state("base-1", pb.PROCESS_STATE_RUNNING)


def test_sigterm_is_graceful_and_stubborn_child_gets_sigkill(tmp_path: Path, lab_dir: Path) -> None:
    config = write_lab(tmp_path, {"stubborn": {"command": child("--ignore-term"), "stop_grace_s": 0.5}})
    with LabDaemon(lab_dir, config) as d:
        pid = d.wait_state("stubborn-1", pb.PROCESS_STATE_RUNNING).pid
        d.proc.send_signal(signal.SIGTERM)
        assert d.wait_exit() == 0
        assert not pid_alive(pid)
        stopped = d.find_events("stubborn-1", pb.PROCESS_EVENT_KIND_STOPPED)
        assert stopped and "killed by SIGKILL" in stopped[-1].reason


def test_sigkilled_daemon_takes_children_and_grandchildren_with_it(tmp_path: Path, lab_dir: Path) -> None:
    with LabDaemon(lab_dir, _lab_with_two(tmp_path, "--spawn-grandchild")) as d:
        for iid in ("base-1", "app-1", "app-2"):
            d.wait_state(iid, pb.PROCESS_STATE_RUNNING)
        children = {p.pid for p in d.processes().values()}
        assert len(children) == 3
        tree = wait_until(lambda: len(t := _tree_pids(d)) == 5 and t, 5, "two grandchildren")
        os.kill(d.proc.pid, signal.SIGKILL)
        assert d.wait_exit() == -signal.SIGKILL
        # Children by their parent-death signal, grandchildren by the group keeper.
        wait_until(lambda: not [p for p in tree if pid_alive(p)], 5, "the whole tree to die with the daemon")
        # A SIGKILLed daemon cannot remove supervisor.json, but its lock died with it.
        assert (lab_dir / "supervisor.json").exists()


def test_lab_stops_after_lease_holder_is_killed(tmp_path: Path, lab_dir: Path) -> None:
    config = write_lab(tmp_path, {"svc": {"command": child(), **FAST}})
    linger_s = 1.5
    with LabDaemon(lab_dir, config, linger_s=linger_s) as d:
        # The test holds a lease until the holder has its own: a slow holder start must not let
        # the lab linger out first.
        mine = d.stub.AcquireLease(pb.AcquireLeaseRequest(holder="test", ttl_ms=30000), timeout=5)
        holder = subprocess.Popen(
            [sys.executable, str(PROCS / "lease_holder.py"), d.info["address"], "600"],
            cwd=ROOT,
            env={**os.environ, ENV_TOKEN: d.token},
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().startswith("LEASED")
            d.stub.ReleaseLease(pb.ReleaseLeaseRequest(lease_id=mine.lease_id), timeout=5)
            pid = d.wait_state("svc-1", pb.PROCESS_STATE_RUNNING).pid
            # Longer than linger: the holder's renewed lease keeps the lab alive.
            with pytest.raises(subprocess.TimeoutExpired):
                d.proc.wait(timeout=linger_s + 0.5)
            assert d.stub.GetLabInfo(pb.GetLabInfoRequest(), timeout=5).leases == 1
            holder.kill()
        finally:
            holder.wait(timeout=10)
            holder.stdout.close()
        assert d.wait_exit(timeout_s=10) == 0
        assert not pid_alive(pid)
        reasons = [e.reason for e in d.find_events(kind=pb.PROCESS_EVENT_KIND_LEASE)]
        assert any("acquired by lease_holder test" in r for r in reasons)
        assert any("lease of lease_holder test expired" in r for r in reasons)


def test_lab_without_lease_stops_after_linger(tmp_path: Path, lab_dir: Path) -> None:
    config = write_lab(tmp_path, {"svc": {"command": child(), **FAST}}, linger_s=0.3)
    d = LabDaemon(lab_dir, config, linger_s=None)
    try:
        d.start()
        assert d.wait_exit(timeout_s=10) == 0
        assert "no lease held for 0.3s (linger)" in d.log()
    finally:
        d.stop()


def test_bad_config_exits_2_with_message(tmp_path: Path, lab_dir: Path) -> None:
    config = write_lab(tmp_path, {"svc": {"command": child(), "restart": "sometimes"}})
    run = subprocess.run(
        LabDaemon(lab_dir, config).argv(), cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
    )
    assert run.returncode == 2
    assert f"{config}: services.svc.restart: 'sometimes' is not allowed" in run.stderr
