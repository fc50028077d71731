"""Python services forked from the daemon's fork server, on a real daemon with real processes.

A ``python -m <module>`` service is forked from one pre-imported parent (runtime/supervisor/
forkserver.py) instead of exec'd: it must look the same from outside (its own session, its own
environment and output, READY, exit codes, restarts) and leave nothing behind when its parent
dies. Anything else is still exec'd, and ``LAB_FORKSERVER=0`` execs everything.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import psutil
import pytest
from procs.labd import CHILD, LabDaemon, pid_alive, wait_until, write_lab

from runtime.v1 import supervisor_pb2 as pb

FAST = {"restart_delay_s": 0.3, "stop_grace_s": 1}
FORKSERVER = "runtime.supervisor.forkserver"


@pytest.fixture
def lab(tmp_path: Path, lab_dir: Path):
    """A daemon whose project root holds ``app.py`` (the test child), run as ``python -m app``."""
    shutil.copy(CHILD, tmp_path / "app.py")
    daemons: list[LabDaemon] = []

    def start(services: dict) -> LabDaemon:
        daemon = LabDaemon(lab_dir, write_lab(tmp_path, services))
        daemons.append(daemon)
        return daemon.start()

    yield start
    for daemon in daemons:
        daemon.stop()


def app(*flags: str) -> dict:
    return {"command": ["python", "-m", "app", *flags], **FAST}


def env_of(d: LabDaemon, instance_id: str) -> dict[str, str]:
    lines = d.stub.GetProcessOutput(
        pb.GetProcessOutputRequest(instance_id=instance_id, lines=500), timeout=5
    ).lines
    return dict(ln.text[4:].split("=", 1) for ln in lines if ln.text.startswith("ENV "))


def forkservers(d: LabDaemon) -> list[psutil.Process]:
    assert d.proc is not None
    daemon = psutil.Process(d.proc.pid)
    return [p for p in daemon.children() if FORKSERVER in " ".join(p.cmdline())]


def test_python_m_service_is_forked_and_looks_exec_d(lab) -> None:
    d = lab({"app": app("--print-env", "--say", "hello from app")})
    info = d.wait_state("app-1", pb.PROCESS_STATE_RUNNING)
    [server] = forkservers(d)
    proc = psutil.Process(info.pid)
    assert proc.ppid() == server.pid, "a python -m service is a child of the fork server"
    assert os.getsid(info.pid) == info.pid and os.getpgid(info.pid) == info.pid, "its own session"
    assert proc.name() == "app-1", "ps -o comm shows the instance"
    assert " ".join(proc.cmdline()).split() == [
        sys.executable,
        "-m",
        "app",
        "--print-env",
        "--say",
        "hello",
        "from",
        "app",
    ]
    env = wait_until(lambda: env_of(d, "app-1"), 5, "the child's printed environment")
    assert env["LAB_INSTANCE"] == "app-1" and env["LAB_PARENT_PID"] == str(server.pid)
    assert env["LAB_SUPERVISOR_PID"] == str(d.proc.pid)
    lines = d.stub.GetProcessOutput(
        pb.GetProcessOutputRequest(instance_id="app-1", lines=500), timeout=5
    ).lines
    assert any(ln.text == "hello from app" and ln.pid == info.pid for ln in lines)
    assert proc.cwd() == str(Path(d.config).parent)


def test_exit_codes_signals_and_restarts_are_seen(lab) -> None:
    d = lab({"app": app("--crash-after", "0.3", "--crash-code", "3"), "victim": app()})
    exited = d.wait_event("app-1", pb.PROCESS_EVENT_KIND_EXITED)[0]
    assert "exited with code 3" in exited.reason and exited.exit_code == 3
    d.wait_event("app-1", pb.PROCESS_EVENT_KIND_SPAWNED, count=2)
    first = d.wait_state("victim-1", pb.PROCESS_STATE_RUNNING)
    os.kill(first.pid, signal.SIGKILL)
    killed = d.wait_event("victim-1", pb.PROCESS_EVENT_KIND_EXITED)[0]
    assert "killed by SIGKILL" in killed.reason
    again = wait_until(
        lambda: (
            (p := d.processes()["victim-1"]).state == pb.PROCESS_STATE_RUNNING and p.pid != first.pid and p
        ),
        10,
        "victim-1 running again",
    )
    [server] = forkservers(d)
    assert psutil.Process(again.pid).ppid() == server.pid


def test_a_dead_fork_server_takes_its_children_and_is_replaced(lab) -> None:
    d = lab({"app": app()})
    first = d.wait_state("app-1", pb.PROCESS_STATE_RUNNING)
    [server] = forkservers(d)
    os.kill(server.pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(first.pid), 5, "the child gone with its fork server")
    exited = d.wait_event("app-1", pb.PROCESS_EVENT_KIND_EXITED)[0]
    assert "killed by SIGKILL" in exited.reason
    again = wait_until(
        lambda: (p := d.processes()["app-1"]).state == pb.PROCESS_STATE_RUNNING and p.pid != first.pid and p,
        15,
        "app-1 running again",
    )
    [new_server] = forkservers(d)
    assert new_server.pid != server.pid and psutil.Process(again.pid).ppid() == new_server.pid


def test_a_module_that_fails_to_import_says_so_like_python(lab) -> None:
    d = lab({"ghost": {"command": ["python", "-m", "no_such_module_here"], **FAST, "restart": "never"}})
    exited = d.wait_event("ghost-1", pb.PROCESS_EVENT_KIND_EXITED)[0]
    assert exited.exit_code == 1
    lines = d.stub.GetProcessOutput(
        pb.GetProcessOutputRequest(instance_id="ghost-1", lines=500), timeout=5
    ).lines
    assert any(ln.text == f"{sys.executable}: No module named no_such_module_here" for ln in lines), [
        ln.text for ln in lines
    ]


def test_other_commands_are_exec_d(lab) -> None:
    d = lab({"script": {"command": ["python", CHILD], **FAST}})
    info = d.wait_state("script-1", pb.PROCESS_STATE_RUNNING)
    assert d.proc is not None and psutil.Process(info.pid).ppid() == d.proc.pid
    assert CHILD in psutil.Process(info.pid).cmdline()
    # Started before the daemon read lab.yaml, the fork server went once it knew it had no use.
    assert not forkservers(d)


def test_lab_forkserver_0_execs_every_service(lab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAB_FORKSERVER", "0")  # the daemon inherits it
    d = lab({"app": app()})
    info = d.wait_state("app-1", pb.PROCESS_STATE_RUNNING)
    assert not forkservers(d)
    assert d.proc is not None and psutil.Process(info.pid).ppid() == d.proc.pid
    assert psutil.Process(info.pid).cmdline()[-2:] == ["-m", "app"]


def thread_nice(pid: int) -> set[int]:
    """The nice value of every thread of ``pid`` (Linux keeps it per thread)."""
    values = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat", encoding="ascii") as fh:
            values.add(int(fh.read().rsplit(")", 1)[1].split()[16]))  # field 19: nice
    return values


def test_nice_lowers_forked_and_exec_d_services_with_all_their_threads(lab) -> None:
    d = lab(
        {
            "app": {**app(), "nice": 7},
            "script": {"command": ["python", CHILD], **FAST, "nice": 7},
            "plain": app(),
        }
    )
    forked = d.wait_state("app-1", pb.PROCESS_STATE_RUNNING)
    exec_d = d.wait_state("script-1", pb.PROCESS_STATE_RUNNING)
    plain = d.wait_state("plain-1", pb.PROCESS_STATE_RUNNING)
    assert psutil.Process(forked.pid).ppid() != d.proc.pid and psutil.Process(exec_d.pid).ppid() == d.proc.pid
    # grpc's threads start after the nice value is set, and inherit it.
    assert len(os.listdir(f"/proc/{forked.pid}/task")) > 1
    assert thread_nice(forked.pid) == {7} and thread_nice(exec_d.pid) == {7}
    assert thread_nice(plain.pid) == {0}
    assert psutil.Process(exec_d.pid).cmdline()[:2] == [sys.executable, CHILD], "nice(1) exec'd itself away"
