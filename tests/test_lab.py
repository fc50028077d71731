"""The Lab API against a real supervisor daemon, real broker and real calculators."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from calculator.lab import CalculatorLab
from runtime.errors import ClientError, LabError, ServiceNotFound, StartupError, UsageError
from runtime.lab import Lab, launcher

LABS = Path(__file__).parent / "labs"
SMALL = LABS / "small.yaml"


@pytest.fixture
def lab(lab_factory) -> Lab:
    return lab_factory("small")


def test_up_starts_every_service_and_down_stops_them(lab_dir: Path) -> None:
    lab = Lab.up(lab_dir=lab_dir, config=SMALL, linger_s=2)
    status = lab.status()
    assert set(status.instance) == {"broker-1", "calculator-1", "calculator-2"}
    assert (status.state == "RUNNING").all(), status
    assert status.pid.is_unique and status.port.is_unique
    assert set(lab.lookup("calculator").instance) == {"calculator-1", "calculator-2"}
    assert CalculatorLab(lab).client().add(2, 3) == 5
    pids = [int(p) for p in status.pid]
    lab.down()
    assert not launcher.pid_alive(lab.pid)
    assert not any(launcher.pid_alive(p) for p in pids)
    assert not (lab_dir / launcher.INFO_FILE).exists()


def test_up_again_attaches_instead_of_starting_a_second_lab(lab: Lab, lab_dir: Path) -> None:
    assert Lab.up(lab_dir=lab_dir, config=SMALL) is lab
    code = "from runtime.lab import Lab; import sys; lab = Lab.up(lab_dir=sys.argv[1], config=sys.argv[2]); print(lab.pid); lab.close()"
    out = subprocess.run([sys.executable, "-c", code, str(lab_dir), str(SMALL)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) == lab.pid


def test_kill_is_followed_by_a_restart_with_a_new_pid(lab: Lab) -> None:
    victim = lab.kill("calculator", 1)
    assert victim["instance"] == "calculator-1" and victim["signal"] == "SIGKILL"
    row = lab.wait_restarted("calculator-1", old_pid=victim["pid"])
    assert row.pid != victim["pid"] and row.restarts >= 1
    ev = lab.events()
    mine = ev[ev.instance == "calculator-1"]
    after = list(mine[mine.seq >= mine[mine.event == "EXITED"].seq.max()].event)
    assert after[:2] == ["EXITED", "RESTART_SCHEDULED"], after
    assert "READY" in after
    assert "SIGKILL" in mine[mine.event == "EXITED"].reason.iloc[-1]


def test_scale_up_down_and_bad_requests(lab: Lab) -> None:
    lab.scale("calculator", 3)
    lab.wait_ready()
    assert len(lab.status("calculator")) == 3
    lab.scale("calculator", 1)
    lab.wait_for(lambda: len(lab.status("calculator")) == 1, what="scale down to 1")
    with pytest.raises(ClientError, match="INVALID_ARGUMENT"):
        lab.scale("calculator", -1)
    with pytest.raises(ServiceNotFound, match="calculator"):
        lab.scale("no-such-service", 1)
    with pytest.raises(ServiceNotFound):
        lab.kill("no-such-service")


def test_run_job_runs_what_lab_yaml_names_and_the_calculator_sits_on_top(lab: Lab) -> None:
    done = lab.run_job("client-python", ["add", "2", "3", "--correlation-id", "req-job"], timeout_s=20)
    assert done.exit_code == 0, done.stderr
    assert done.elapsed_ms > 0 and done.pid > 0 and done.instance.startswith("client-python")
    assert '"result": 5' in done.stdout and "req-job" in done.stdout
    with pytest.raises(ServiceNotFound, match="no-such-job"):
        lab.run_job("no-such-job")
    calc_lab = CalculatorLab(lab)  # the demo's helpers, over lab.run_job
    got = calc_lab.run_client("python", "multiply", 6, 7)
    assert got["value"] == 42 and got["server_language"] == "python" and got["instance"].startswith("calculator-")
    with pytest.raises(ClientError) as info:
        calc_lab.run_client("python", "divide", 1, 0)
    assert info.value.code == "INVALID_ARGUMENT"


def test_learner_mistakes_are_usage_errors_raised_before_anything_is_sent(lab: Lab) -> None:
    mistakes = [
        (lambda: lab.kill("calculator", 1.5), "instance must be a name like 'calculator-1'"),
        (lambda: lab.kill("calculator", 1, signal=999), "999 is not a signal number"),
        (lambda: lab.scale("calculator", "3"), "scaling 'calculator'"),
        (lambda: lab.run_job("client-python", "add 2 3"), "a list of strings"),
        (lambda: lab.run_job("client-python", timeout_s=0), "must be a number of seconds > 0"),
        (lambda: CalculatorLab(lab).run_client("fortran", "add", 1, 2), "unknown client language 'fortran'"),
        (lambda: CalculatorLab(lab).run_client("python", "pow", 1, 2), "unknown operation 'pow'"),
        (lambda: lab.inject("calculator", "slowness"), "unknown fault kind 'slowness'"),
        (lambda: lab.logs(level="LOUD"), "unknown log level 'LOUD'"),
    ]
    for mistake, words in mistakes:
        with pytest.raises(UsageError, match=words):
            mistake()
    assert (lab.status("calculator").restarts == 0).all()  # nothing was sent, nothing was hit
    # A part whose service this lab does not run says so as a LabError, not a raw gRPC error.
    with pytest.raises(LabError, match="HealthService"):
        lab.health()


def test_a_service_that_dies_before_ready_is_named_with_its_exit_and_output(lab_dir: Path) -> None:
    with pytest.raises(StartupError) as info:
        Lab.up(lab_dir=lab_dir, config=LABS / "broken.yaml", linger_s=1, timeout_s=20)
    text = str(info.value)
    assert "doomed" in text and "7" in text, text
    assert "boom: no settings file" in text, text
    # The failed up stopped the lab it had started (see runtime.lab.startup.failed_up) and says so.
    assert "was stopped again" in text, text
    assert launcher.read_info(lab_dir) is None


def test_a_killed_lease_holder_stops_the_lab_after_linger(lab_dir: Path) -> None:
    code = (
        "from runtime.lab import Lab; import sys, time; "
        "lab = Lab.up(lab_dir=sys.argv[1], config=sys.argv[2], linger_s=1); print(lab.pid, flush=True); time.sleep(600)"
    )
    env = {**os.environ, "LAB_LEASE_TTL_MS": "1000"}
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(lab_dir), str(SMALL)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        daemon_pid = int(holder.stdout.readline())  # type: ignore[union-attr]
        children = [p.pid for p in __import__("psutil").Process(daemon_pid).children(recursive=True)]
        assert children, "the lab should have started service processes"
    finally:
        holder.send_signal(signal.SIGKILL)  # like a kernel restart
        holder.wait(timeout=10)
        holder.stdout.close()  # type: ignore[union-attr]
    t0 = time.monotonic()
    assert launcher.wait_for_exit(daemon_pid, timeout_s=20), "the lab outlived its last lease"
    assert time.monotonic() - t0 >= 0.5, "the lab stopped before its lease lapsed and linger passed"
    assert not any(launcher.pid_alive(p) for p in children)
