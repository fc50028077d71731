"""Files and starts that go wrong: a damaged supervisor.json, a lock holder that never answers, an
``up`` that fails; and no busy loop while waiting (the CPU time of a failing ``up`` is measured).

Every lab here is one tiny service (tests/procs/child.py) in the test's own lab dir, started and
stopped through ``runtime-lab`` as a learner would.
"""

from __future__ import annotations

import fcntl
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from procs.labd import child, write_lab
from waiting import wait_until

from runtime.errors import StartupError
from runtime.lab import Lab, launcher

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
FAST = {"restart_delay_s": 0.3, "stop_grace_s": 1}
# A waiting `up` may use this much CPU over its whole wait: checking a file 20 times a second costs
# milliseconds; the old exit-code-3 loop burnt one core for 15 s.
WAIT_CPU_BUDGET_S = 0.5


def cli(*args: str | Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.fixture
def one_service(tmp_path: Path) -> Path:
    return write_lab(tmp_path, {"svc": {"command": child(), **FAST}}, linger_s=1)


def up(lab_dir: Path, config: Path) -> int:
    """`runtime-lab up`; returns the supervisor's pid."""
    done = cli("up", "--lab-dir", lab_dir, "--config", config)
    assert done.returncode == 0, done.stderr
    info = launcher.read_info(lab_dir)
    assert info is not None
    return info.pid


def lab_processes(pid: int) -> list[int]:
    return [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]


@contextmanager
def lock_held_by_us(lab_dir: Path) -> Iterator[None]:
    """Hold the lab's lock as a hung daemon would: it holds the lab and never answers."""
    with open(lab_dir / launcher.LOCK_FILE, "a+", encoding="utf-8") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        yield


def cpu_s(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


@pytest.mark.parametrize("damage", ["half-written", "garbage"])
def test_up_attaches_again_after_supervisor_json_is_damaged(lab_dir: Path, one_service: Path, damage: str):
    pid = up(lab_dir, one_service)
    try:
        info_file = lab_dir / launcher.INFO_FILE
        text = info_file.read_text(encoding="utf-8")
        info_file.write_text(text[: len(text) // 2] if damage == "half-written" else "\x00not json{")
        t0 = time.monotonic()
        again = cli("up", "--lab-dir", lab_dir, "--config", one_service)
        assert again.returncode == 0, again.stderr
        assert f"pid {pid}" in again.stdout, again.stdout  # the same lab, not a second one
        assert time.monotonic() - t0 < launcher.HOLDER_WAIT_S + 5
        # The daemon wrote its file again; `status` reads it at once.
        info = launcher.read_info(lab_dir)
        assert info is not None and info.pid == pid
        status = cli("status", "--lab-dir", lab_dir)
        assert status.returncode == 0 and "svc-1" in status.stdout, status.stderr
    finally:
        down = cli("down", "--lab-dir", lab_dir)
    assert down.returncode == 0, down.stderr
    assert not launcher.pid_alive(pid)


def test_down_stops_a_lab_whose_supervisor_json_cannot_be_read(lab_dir: Path, one_service: Path):
    pid = up(lab_dir, one_service)
    pids = lab_processes(pid)
    assert len(pids) >= 2, "the lab should run its service"
    info_file = lab_dir / launcher.INFO_FILE
    info_file.unlink()
    info_file.mkdir()  # unreadable as JSON, and the daemon cannot write its file again
    try:
        down = cli("down", "--lab-dir", lab_dir)
        assert down.returncode == 0, down.stderr
        assert f"supervisor pid {pid}" in down.stdout and launcher.LOCK_FILE in down.stdout, down.stdout
        assert not any(launcher.pid_alive(p) for p in pids)
        assert launcher.lock_holder(lab_dir) is None
    finally:
        info_file.rmdir()


def test_down_never_signals_a_lock_holder_that_is_not_the_labs_supervisor(lab_dir: Path):
    with lock_held_by_us(lab_dir):
        down = cli("down", "--lab-dir", lab_dir)
    assert down.returncode == 1
    assert f"pid {os.getpid()} holds" in down.stderr and "not a supervisor of this lab" in down.stderr


def test_spawn_against_a_holder_that_never_answers_waits_without_spinning(
    lab_dir: Path, one_service: Path, monkeypatch: pytest.MonkeyPatch
):
    # The exit-code-3 path: our daemon finds the lock taken and exits 3; the launcher then waits
    # for the holder to publish supervisor.json. It used to skip its sleep there.
    monkeypatch.setattr(launcher, "HOLDER_WAIT_S", 3.0)
    (lab_dir / launcher.INFO_FILE).write_text("{half")
    with lock_held_by_us(lab_dir):
        before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        with pytest.raises(StartupError) as info:
            launcher.spawn(lab_dir, one_service, linger_s=1)
        wall, after = time.monotonic() - t0, resource.getrusage(resource.RUSAGE_SELF)
    text = str(info.value)
    assert f"pid {os.getpid()} holds the lab in {lab_dir}" in text and "runtime-lab down" in text, text
    assert wall >= 3.0, f"gave up after {wall:.1f} s instead of waiting for the holder"
    cpu = cpu_s(after) - cpu_s(before)  # this process only: the spawned daemon is a child
    assert cpu < WAIT_CPU_BUDGET_S, f"{cpu:.2f} s CPU over {wall:.1f} s of waiting"


def test_runtime_lab_up_against_a_hung_holder_says_who_and_uses_little_cpu(lab_dir: Path, one_service: Path):
    # Measured side by side: what the same interpreter costs to start `runtime-lab` at all.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert cli("--help").returncode == 0
    startup = cpu_s(resource.getrusage(resource.RUSAGE_CHILDREN)) - cpu_s(before)
    (lab_dir / launcher.INFO_FILE).write_text("")
    with lock_held_by_us(lab_dir):
        before, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
        failed = cli("up", "--lab-dir", lab_dir, "--config", one_service)
        wall, after = time.monotonic() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    assert failed.returncode == 1, failed.stdout
    assert f"pid {os.getpid()} holds the lab" in failed.stderr and "runtime-lab down" in failed.stderr
    assert wall >= launcher.HOLDER_WAIT_S
    waiting = cpu_s(after) - cpu_s(before) - startup
    assert waiting < WAIT_CPU_BUDGET_S, f"`up` used {waiting:.2f} s CPU beyond start-up over {wall:.1f} s"


def test_a_failed_up_stops_the_lab_it_started(lab_dir: Path, tmp_path: Path):
    config = write_lab(
        tmp_path,
        {
            "fine": {"command": child(), **FAST},
            "doomed": {
                "command": child("--exit-code", "7"),
                "restart": "never",
                "depends_on": {"fine": "ready"},
            },
        },
        linger_s=60,
    )
    failed = cli("up", "--lab-dir", lab_dir, "--config", config)
    assert failed.returncode == 1, failed.stdout
    assert "doomed" in failed.stderr and "was stopped again" in failed.stderr, failed.stderr
    # Nothing left: no daemon, no lock holder, no 'fine' service under a persistent lease.
    assert launcher.read_info(lab_dir) is None and launcher.lock_holder(lab_dir) is None


def test_a_failed_up_on_a_running_lab_leaves_it_running_and_says_how_to_stop_it(
    lab_dir: Path, tmp_path: Path
):
    config = write_lab(
        tmp_path,
        {"fine": {"command": child(), **FAST}, "fragile": {"command": child(), "restart": "never", **FAST}},
        linger_s=1,
    )
    pid = up(lab_dir, config)
    try:
        lab = Lab.attach(lab_dir)
        try:
            lab.kill("fragile")
            wait_until(lambda: (lab.status("fragile").state == "EXITED").all(), 15, "fragile-1 EXITED")
        finally:
            lab.close()
        failed = cli("up", "--lab-dir", lab_dir, "--config", config)
        assert failed.returncode == 1
        assert "fragile-1" in failed.stderr and "keeps running" in failed.stderr, failed.stderr
        assert "runtime-lab down" in failed.stderr
        assert launcher.pid_alive(pid)
    finally:
        down = cli("down", "--lab-dir", lab_dir)
    assert down.returncode == 0, down.stderr
