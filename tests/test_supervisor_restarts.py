"""Real children under a real daemon: READY, crashes, restart policy, start limit, dependencies."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from procs.labd import LabDaemon, child, pid_alive, wait_until, write_lab

from runtime.v1 import supervisor_pb2 as pb

FAST = {"restart_delay_s": 0.3, "backoff_factor": 2.0, "stop_grace_s": 1}


@pytest.fixture
def lab(tmp_path: Path, lab_dir: Path, request: pytest.FixtureRequest):
    """A daemon for the lab.yaml the test's `services` mark (or parametrization) describes."""
    daemons: list[LabDaemon] = []

    def start(services: dict, **top: object) -> LabDaemon:
        daemon = LabDaemon(lab_dir, write_lab(tmp_path, services, **top))
        daemons.append(daemon)
        return daemon.start()

    yield start
    for daemon in daemons:
        daemon.stop()


def test_ready_confirmed_by_health(lab) -> None:
    d = lab({"svc": {"command": child("--say", "hello"), **FAST}})
    info = d.wait_state("svc-1", pb.PROCESS_STATE_RUNNING)
    assert info.port > 0 and info.pid > 0
    ready = d.wait_event("svc-1", pb.PROCESS_EVENT_KIND_READY)[0]
    assert f"ready on port {info.port}" in ready.reason and "SERVING" in ready.reason
    spawned = d.find_events("svc-1", pb.PROCESS_EVENT_KIND_SPAWNED)[0]
    assert spawned.seq < ready.seq and spawned.pid == info.pid
    out = d.stub.GetProcessOutput(pb.GetProcessOutputRequest(instance_id="svc-1"), timeout=5).lines
    assert [ln.text for ln in out][:2] == ["hello", f"READY port={info.port}"]
    assert all(ln.stream == "stdout" and ln.pid == info.pid and ln.timestamp > 0 for ln in out)


def test_not_serving_is_not_ready(lab) -> None:
    # 3 s: long enough for the child to print READY on a busy machine (it failed with 1 s at load 14,
    # the reason then being "no READY line"), so the failure is the one under test.
    d = lab({"svc": {"command": child("--not-serving"), "ready_timeout_s": 3.0, "restart": "never", **FAST}})
    failed = d.wait_event("svc-1", pb.PROCESS_EVENT_KIND_START_FAILED)[0]
    assert "READY but grpc.health.v1 not SERVING within 3s" in failed.reason
    assert not d.find_events("svc-1", pb.PROCESS_EVENT_KIND_READY)
    d.wait_state("svc-1", pb.PROCESS_STATE_EXITED)
    assert not pid_alive(failed.pid)


def test_crash_is_seen_and_restarted_with_new_pid(lab) -> None:
    d = lab({"svc": {"command": child("--crash-after", "0.3", "--crash-code", "7"), **FAST}})
    first = d.wait_state("svc-1", pb.PROCESS_STATE_RUNNING)
    exited = d.wait_event("svc-1", pb.PROCESS_EVENT_KIND_EXITED)[0]
    assert (exited.exit_code, exited.pid, exited.reason) == (7, first.pid, "exited with code 7")
    sched = d.wait_event("svc-1", pb.PROCESS_EVENT_KIND_RESTART_SCHEDULED)[0]
    assert sched.rule == "restart=always, delay 0.3s (attempt 1)"
    assert sched.next_attempt_at - sched.timestamp == pytest.approx(300, abs=5)
    respawn = d.wait_event("svc-1", pb.PROCESS_EVENT_KIND_SPAWNED, count=2)[1]
    assert respawn.pid != first.pid
    assert (respawn.timestamp_us - sched.timestamp_us) / 1e6 >= 0.29
    second = d.wait_event("svc-1", pb.PROCESS_EVENT_KIND_READY, count=2)[1]
    assert second.pid == respawn.pid
    assert wait_until(lambda: d.processes()["svc-1"].restarts >= 1)


def test_kill_signal_is_reported(lab) -> None:
    d = lab({"svc": {"command": child(), **FAST, "restart_delay_s": 5.0}})
    info = d.wait_state("svc-1", pb.PROCESS_STATE_RUNNING)
    reply = d.stub.SignalProcess(pb.SignalProcessRequest(service="svc", signal="KILL"), timeout=5)
    assert (reply.pid, reply.signal) == (info.pid, "SIGKILL")
    exited = d.wait_event("svc-1", pb.PROCESS_EVENT_KIND_EXITED)[0]
    assert (exited.reason, exited.signal, exited.exit_code) == ("killed by SIGKILL", 9, -9)
    backoff = d.wait_state("svc-1", pb.PROCESS_STATE_BACKOFF)
    assert backoff.last_exit_reason == "killed by SIGKILL" and backoff.next_start_at > 0
    assert d.find_events("svc-1", pb.PROCESS_EVENT_KIND_SIGNALED)


def test_on_failure_and_never(lab) -> None:
    d = lab(
        {
            "clean": {
                "command": child("--crash-after", "0.2", "--crash-code", "0"),
                "restart": "on-failure",
                **FAST,
            },
            "failing": {
                "command": child("--crash-after", "0.2", "--crash-code", "3"),
                "restart": "on-failure",
                **FAST,
            },
            "never": {
                "command": child("--crash-after", "0.2", "--crash-code", "3"),
                "restart": "never",
                **FAST,
            },
        }
    )
    d.wait_event("failing-1", pb.PROCESS_EVENT_KIND_SPAWNED, count=2)
    clean = d.wait_state("clean-1", pb.PROCESS_STATE_EXITED)
    never = d.wait_state("never-1", pb.PROCESS_STATE_EXITED)
    assert clean.exit_code == 0 and never.exit_code == 3
    rules = [e.rule for e in d.find_events("clean-1", pb.PROCESS_EVENT_KIND_EXITED)]
    assert "restart=on-failure: exit code 0, not restarted" in rules
    assert "restart=never: not restarted" in [
        e.rule for e in d.find_events("never-1", pb.PROCESS_EVENT_KIND_EXITED)
    ]
    assert len(d.find_events("clean-1", pb.PROCESS_EVENT_KIND_SPAWNED)) == 1
    assert len(d.find_events("never-1", pb.PROCESS_EVENT_KIND_SPAWNED)) == 1


def test_backoff_then_start_limit_fatal(lab) -> None:
    d = lab(
        {
            "svc": {
                "command": child("--exit-code", "2"),
                "restart_delay_s": 0.1,
                "backoff_factor": 2.0,
                "backoff_max_s": 0.3,
                "start_limit": {"starts": 4, "within_s": 30},
            }
        }
    )
    fatal = d.wait_event("svc-1", pb.PROCESS_EVENT_KIND_FATAL)[0]
    assert "start limit 4 in 30s" in fatal.rule
    rules = [e.rule for e in d.find_events("svc-1", pb.PROCESS_EVENT_KIND_RESTART_SCHEDULED)]
    assert rules == [
        "restart=always, delay 0.1s (attempt 1)",
        "restart=always, delay 0.2s (attempt 2)",
        "restart=always, delay 0.3s (attempt 3)",
    ]
    info = d.processes()["svc-1"]
    assert (info.state, info.restarts, info.pid) == (pb.PROCESS_STATE_FATAL, 3, 0)
    # A manual start forgets the history and tries again.
    d.stub.StartProcess(pb.StartProcessRequest(service="svc"), timeout=5)
    d.wait_event("svc-1", pb.PROCESS_EVENT_KIND_SPAWNED, count=5)


def test_exit_before_ready_names_service_code_and_output(lab) -> None:
    d = lab(
        {"svc": {"command": child("--say", "loading model", "--exit-code", "5"), "restart": "never", **FAST}}
    )
    failed = d.wait_event("svc-1", pb.PROCESS_EVENT_KIND_START_FAILED)[0]
    assert failed.reason.startswith("svc-1 exited with code 5 before READY")
    assert "loading model" in failed.reason and "giving up with code 5" in failed.reason
    assert failed.exit_code == 5
    d.wait_state("svc-1", pb.PROCESS_STATE_EXITED)


def test_no_ready_times_out_and_is_killed(lab) -> None:
    d = lab(
        {
            "svc": {
                "command": child("--no-ready", "--say", "stuck"),
                "ready_timeout_s": 2.0,
                "restart": "never",
            }
        }
    )
    failed = d.wait_event("svc-1", pb.PROCESS_EVENT_KIND_START_FAILED)[0]
    assert "no READY line within 2s" in failed.reason and "stuck" in failed.reason
    exited = d.wait_event("svc-1", pb.PROCESS_EVENT_KIND_EXITED)[0]
    assert exited.reason == "killed by SIGKILL"
    assert not pid_alive(failed.pid)


def test_command_not_found_is_fatal_and_named(lab) -> None:
    d = lab({"svc": {"command": ["no-such-program-xyz", "--flag"]}})
    fatal = d.wait_event("svc-1", pb.PROCESS_EVENT_KIND_FATAL)[0]
    assert "svc-1" in fatal.reason and "'no-such-program-xyz' not found" in fatal.reason
    assert d.processes()["svc-1"].state == pb.PROCESS_STATE_FATAL


def test_strict_port_in_use_fails_with_output(lab) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        d = lab(
            {
                "svc": {
                    "command": child(),
                    "restart": "never",
                    "env": {"LAB_PORT": port, "LAB_PORT_STRICT": "1"},
                }
            }
        )
        failed = d.wait_event("svc-1", pb.PROCESS_EVENT_KIND_START_FAILED)[0]
    assert failed.reason.startswith("svc-1 exited with code 4 before READY")
    assert f"cannot bind 127.0.0.1:{port}: port in use" in failed.reason


def test_sticky_port_restarts_on_the_same_port(lab) -> None:
    d = lab(
        {"broker": {"command": child(), "sticky_port": True, **FAST}, "app": {"command": child(), **FAST}}
    )
    first = d.wait_state("broker-1", pb.PROCESS_STATE_RUNNING)
    d.stub.SignalProcess(pb.SignalProcessRequest(service="broker", signal="9"), timeout=5)
    d.wait_event("broker-1", pb.PROCESS_EVENT_KIND_READY, count=2)
    again = d.processes()["broker-1"]
    assert again.pid != first.pid and again.port == first.port
    info = d.stub.GetLabInfo(pb.GetLabInfoRequest(), timeout=5)
    assert info.broker_address == f"127.0.0.1:{first.port}"


def test_broker_dependents_start_beside_it_with_its_address(lab) -> None:
    # The default lab's shape: the broker's port is chosen before it runs, so a service that
    # depends on it being `started` spawns at once and is told where the broker will answer.
    d = lab(
        {
            "broker": {"command": child("--say", "warming up"), "sticky_port": True, **FAST},
            "app": {"command": child("--print-env"), "depends_on": {"broker": "started"}, **FAST},
        }
    )
    app = d.wait_state("app-1", pb.PROCESS_STATE_RUNNING)
    broker = d.wait_state("broker-1", pb.PROCESS_STATE_RUNNING)
    seq = {(e.instance_id, e.kind): e.seq for e in reversed(d.find_events())}
    spawned = seq[("app-1", pb.PROCESS_EVENT_KIND_SPAWNED)]
    assert (
        seq[("broker-1", pb.PROCESS_EVENT_KIND_SPAWNED)]
        < spawned
        < seq[("broker-1", pb.PROCESS_EVENT_KIND_READY)]
    )
    lines = d.stub.GetProcessOutput(
        pb.GetProcessOutputRequest(instance_id="app-1", lines=500), timeout=5
    ).lines
    env = dict(ln.text[4:].split("=", 1) for ln in lines if ln.text.startswith("ENV "))
    assert env["LAB_BROKER_ADDR"] == f"127.0.0.1:{broker.port}" and app.port != broker.port
    info = d.stub.GetLabInfo(pb.GetLabInfoRequest(), timeout=5)
    assert info.broker_address == f"127.0.0.1:{broker.port}"


def test_broker_without_sticky_port_is_waited_for_until_ready(lab) -> None:
    # Without a port chosen beforehand the broker's address exists only once it is READY: a
    # dependent that asked for `started` waits for it rather than start without a broker.
    d = lab(
        {
            "broker": {"command": child(), **FAST},
            "app": {"command": child("--print-env"), "depends_on": {"broker": "started"}, **FAST},
        }
    )
    d.wait_state("app-1", pb.PROCESS_STATE_RUNNING)
    broker = d.wait_state("broker-1", pb.PROCESS_STATE_RUNNING)
    seq = {(e.instance_id, e.kind): e.seq for e in reversed(d.find_events())}
    assert seq[("broker-1", pb.PROCESS_EVENT_KIND_READY)] < seq[("app-1", pb.PROCESS_EVENT_KIND_SPAWNED)]
    lines = d.stub.GetProcessOutput(
        pb.GetProcessOutputRequest(instance_id="app-1", lines=500), timeout=5
    ).lines
    env = dict(ln.text[4:].split("=", 1) for ln in lines if ln.text.startswith("ENV "))
    assert env["LAB_BROKER_ADDR"] == f"127.0.0.1:{broker.port}"


def test_depends_on_orders_starts(lab) -> None:
    d = lab(
        {
            "web": {"command": child(), "depends_on": {"api": "healthy"}, **FAST},
            "api": {"command": child(), "depends_on": {"db": "ready"}, **FAST},
            "db": {"command": child("--say", "warming up"), **FAST},
            "sidecar": {"command": child(), "depends_on": {"db": "started"}, **FAST},
        }
    )
    d.wait_state("web-1", pb.PROCESS_STATE_RUNNING)
    seq = {
        (e.instance_id, e.kind): e.seq
        for e in reversed(d.find_events())
        if e.kind
        in (pb.PROCESS_EVENT_KIND_SPAWNED, pb.PROCESS_EVENT_KIND_READY, pb.PROCESS_EVENT_KIND_WAITING)
    }
    assert seq[("db-1", pb.PROCESS_EVENT_KIND_READY)] < seq[("api-1", pb.PROCESS_EVENT_KIND_SPAWNED)]
    assert seq[("api-1", pb.PROCESS_EVENT_KIND_READY)] < seq[("web-1", pb.PROCESS_EVENT_KIND_SPAWNED)]
    assert seq[("db-1", pb.PROCESS_EVENT_KIND_SPAWNED)] < seq[("sidecar-1", pb.PROCESS_EVENT_KIND_SPAWNED)]
    waiting = d.find_events("web-1", pb.PROCESS_EVENT_KIND_WAITING)
    assert waiting and waiting[0].reason == "waiting for api to be healthy"


def test_missing_requirement_skips_service(lab, tmp_path: Path) -> None:
    d = lab(
        {
            "ts": {"command": ["node", "dist/server.js"], "requires": ["no-such-node-xyz", "dist/server.js"]},
            "ok": {"command": child(), **FAST},
        }
    )
    d.wait_state("ok-1", pb.PROCESS_STATE_RUNNING)
    ts = d.processes()["ts-1"]
    assert ts.state == pb.PROCESS_STATE_SKIPPED and ts.pid == 0
    assert ts.last_exit_reason == "no-such-node-xyz not found; install it to run this service"
    stopped = d.find_events("ts-1", pb.PROCESS_EVENT_KIND_STOPPED)
    assert [e.reason for e in stopped] == [
        "ts-1 skipped: no-such-node-xyz not found; install it to run this service"
    ]
    # Start and stop leave it SKIPPED: the requirement is still missing, and nothing runs.
    d.stub.StartProcess(pb.StartProcessRequest(service="ts"), timeout=5)
    d.stub.StopProcess(pb.StopProcessRequest(service="ts"), timeout=5)
    assert d.processes()["ts-1"].state == pb.PROCESS_STATE_SKIPPED
    assert not d.find_events("ts-1", pb.PROCESS_EVENT_KIND_SPAWNED)


def test_child_env_contract_and_report_exit_to_broker(lab, lab_dir: Path) -> None:
    d = lab(
        {
            "broker": {"command": child("--broker", "--print-env"), "sticky_port": True, **FAST},
            "app": {
                "command": child("--print-env", "--crash-after", "0.3"),
                "depends_on": {"broker": "ready"},
                "language": "rust",
                "env": {"LAB_EXTRA": "x"},
                **FAST,
            },
        }
    )
    broker = d.wait_state("broker-1", pb.PROCESS_STATE_RUNNING)
    crashed = d.wait_event("app-1", pb.PROCESS_EVENT_KIND_EXITED)[0]

    def output(iid: str) -> list[str]:
        lines = d.stub.GetProcessOutput(
            pb.GetProcessOutputRequest(instance_id=iid, lines=500), timeout=5
        ).lines
        return [ln.text for ln in lines]

    env = dict(t[4:].split("=", 1) for t in output("app-1") if t.startswith("ENV "))
    expected = {
        "LAB_BROKER_ADDR": f"127.0.0.1:{broker.port}",
        "LAB_DIR": str(lab_dir),
        "LAB_EXTRA": "x",
        "LAB_INSTANCE": "app-1",
        "LAB_LANGUAGE": "rust",
        "LAB_PORT": "0",
        "LAB_PORT_STRICT": "0",
        "LAB_SERVICE": "app",
        "LAB_SUPERVISOR_ADDR": d.info["address"],
        "LAB_SUPERVISOR_PID": str(d.proc.pid),
        "PYTHONUNBUFFERED": "1",
    }
    assert {key: env.get(key) for key in expected} == expected  # plus what the daemon inherited
    broker_env = dict(t[4:].split("=", 1) for t in output("broker-1") if t.startswith("ENV "))
    assert broker_env["LAB_BROKER_ADDR"] == "" and broker_env["LAB_INSTANCE"] == "broker-1"
    report = f"REPORT_EXIT app-1 {crashed.pid} exited with code 1"
    wait_until(lambda: report in output("broker-1"), 5, "ReportExit at the broker")


def test_waiting_instance_can_be_stopped(lab) -> None:
    d = lab(
        {
            "ts": {"command": ["node", "x.js"], "requires": ["no-such-node-xyz"]},
            "app": {"command": child(), "depends_on": {"ts": "ready"}, **FAST},
        }
    )
    waiting = d.wait_state("app-1", pb.PROCESS_STATE_WAITING)
    assert waiting.pid == 0
    assert d.wait_event("app-1", pb.PROCESS_EVENT_KIND_WAITING)[0].reason == "waiting for ts to be ready"
    stopped = d.stub.StopProcess(pb.StopProcessRequest(service="app"), timeout=10).processes
    assert [p.state for p in stopped] == [pb.PROCESS_STATE_STOPPED]
    assert not d.find_events("app-1", pb.PROCESS_EVENT_KIND_SPAWNED)
