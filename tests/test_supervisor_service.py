"""SupervisorService RPCs against a real daemon: control verbs, jobs, and bad input statuses."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest
from procs.labd import LabDaemon, child, pid_alive, wait_until, write_lab

from runtime.v1 import supervisor_pb2 as pb

FAST = {"restart_delay_s": 0.3, "stop_grace_s": 1}


@pytest.fixture
def d(tmp_path: Path, lab_dir: Path):
    """One daemon with a small lab: a 2-instance service, and jobs."""
    echo = (
        "import os, sys; print(os.environ['LAB_SERVICE'], os.environ['LAB_INSTANCE'], *sys.argv[1:]); "
        "print('to stderr', file=sys.stderr); sys.exit(int(os.environ.get('CODE', '0')))"
    )
    config = write_lab(
        tmp_path,
        {"svc": {"command": child(), "instances": 2, "max_instances": 3, **FAST}},
        jobs={
            "echo": {"command": ["python", "-c", echo], "env": {"CODE": "0"}},
            "sleepy": {"command": ["python", "-c", "import time; time.sleep(30)"]},
            "rust": {"command": ["bin/client"], "requires": ["bin/client"], "language": "rust"},
            "typo": {"command": ["no-such-client-xyz"]},
        },
    )
    daemon = LabDaemon(lab_dir, config).start()
    daemon.wait_state("svc-1", pb.PROCESS_STATE_RUNNING)
    daemon.wait_state("svc-2", pb.PROCESS_STATE_RUNNING)
    yield daemon
    daemon.stop()


def _code(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_stop_start_restart(d: LabDaemon) -> None:
    old = d.processes()["svc-1"]
    stopped = d.stub.StopProcess(
        pb.StopProcessRequest(service="svc", instance_id="svc-1"), timeout=10
    ).processes
    assert [(p.instance_id, p.state, p.pid) for p in stopped] == [("svc-1", pb.PROCESS_STATE_STOPPED, 0)]
    assert not pid_alive(old.pid)
    assert d.processes()["svc-2"].state == pb.PROCESS_STATE_RUNNING
    d.stub.StartProcess(pb.StartProcessRequest(service="svc"), timeout=10)
    started = d.wait_state("svc-1", pb.PROCESS_STATE_RUNNING)
    assert started.pid != old.pid
    before = d.processes()["svc-2"]
    d.stub.RestartProcess(pb.RestartProcessRequest(instance_id="svc-2"), timeout=10)
    after = d.wait_state("svc-2", pb.PROCESS_STATE_RUNNING)
    assert after.pid != before.pid and after.restarts == before.restarts + 1


def test_scale_up_and_down(d: LabDaemon) -> None:
    d.stub.ScaleService(pb.ScaleServiceRequest(service="svc", instances=3), timeout=10)
    d.wait_state("svc-3", pb.PROCESS_STATE_RUNNING)
    pid3 = d.processes()["svc-3"].pid
    reply = d.stub.ScaleService(pb.ScaleServiceRequest(service="svc", instances=1), timeout=10)
    assert [p.instance_id for p in reply.processes] == ["svc-1"]
    assert not pid_alive(pid3)
    assert d.find_events(kind=pb.PROCESS_EVENT_KIND_SCALED)


def test_run_job(d: LabDaemon) -> None:
    reply = d.stub.RunJob(pb.RunJobRequest(job="echo", args=["a", "b"]), timeout=30)
    assert (reply.exit_code, reply.stdout, reply.stderr) == (0, "echo echo-1 a b\n", "to stderr\n")
    assert reply.instance_id == "echo-1" and reply.pid > 0 and reply.elapsed_ms > 0
    # lab.yaml's env is the job's; a caller cannot override it (only LAB_CORRELATION_ID passes).
    code, msg = _code(lambda: d.stub.RunJob(pb.RunJobRequest(job="echo", env={"CODE": "3"}), timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "'CODE' is not allowed" in msg
    again = d.stub.RunJob(pb.RunJobRequest(job="echo", env={"LAB_CORRELATION_ID": "req-1"}), timeout=30)
    assert (again.exit_code, again.instance_id) == (0, "echo-2")


def test_run_job_timeout_kills_it(d: LabDaemon) -> None:
    reply = d.stub.RunJob(pb.RunJobRequest(job="sleepy", timeout_ms=300), timeout=30)
    assert reply.exit_code == 124 and "killed after its timeout of 0.3s" in reply.stderr
    assert 250 <= reply.elapsed_ms < 5000
    assert not pid_alive(reply.pid)


def test_bad_input_statuses(d: LabDaemon) -> None:
    s = d.stub
    code, msg = _code(lambda: s.StopProcess(pb.StopProcessRequest(service="nope"), timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND and "unknown service 'nope'; known services: svc" in msg
    code, msg = _code(lambda: s.GetProcessOutput(pb.GetProcessOutputRequest(instance_id="svc-9"), timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND and "known instances: svc-1, svc-2" in msg
    code, msg = _code(lambda: s.ScaleService(pb.ScaleServiceRequest(service="svc", instances=4), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "use 0..3" in msg
    code, _ = _code(lambda: s.ScaleService(pb.ScaleServiceRequest(service="svc", instances=-1), timeout=5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, msg = _code(
        lambda: s.SignalProcess(pb.SignalProcessRequest(pid=os.getpid(), signal="KILL"), timeout=5)
    )
    assert (
        code == grpc.StatusCode.PERMISSION_DENIED and f"pid {os.getpid()} was not started by this lab" in msg
    )
    code, msg = _code(
        lambda: s.SignalProcess(pb.SignalProcessRequest(service="svc", signal="SIGNOPE"), timeout=5)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "unknown signal 'SIGNOPE'" in msg
    code, msg = _code(lambda: s.RunJob(pb.RunJobRequest(job="nope"), timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND and "known jobs: echo, sleepy, rust, typo" in msg
    code, msg = _code(lambda: s.RunJob(pb.RunJobRequest(job="rust"), timeout=5))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "job rust needs bin/client" in msg
    code, msg = _code(lambda: s.RunJob(pb.RunJobRequest(job="typo"), timeout=5))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "command 'no-such-client-xyz' not found" in msg
    code, _ = _code(lambda: s.RenewLease(pb.RenewLeaseRequest(lease_id="nope"), timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = _code(lambda: s.ListProcesses(pb.ListProcessesRequest(service="nope"), timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND


def test_signal_by_pid_and_number(d: LabDaemon) -> None:
    pid = d.processes()["svc-2"].pid
    reply = d.stub.SignalProcess(pb.SignalProcessRequest(pid=pid, signal="9"), timeout=5)
    assert (reply.instance_id, reply.signal) == ("svc-2", "SIGKILL")
    exited = d.wait_event("svc-2", pb.PROCESS_EVENT_KIND_EXITED)[0]
    assert exited.pid == pid and exited.reason == "killed by SIGKILL"


def test_leases_and_watch_replay(d: LabDaemon) -> None:
    lease = d.stub.AcquireLease(pb.AcquireLeaseRequest(holder="test", ttl_ms=5000), timeout=5)
    assert lease.ttl_ms == 5000 and lease.lease_id
    assert d.stub.GetLabInfo(pb.GetLabInfoRequest(), timeout=5).leases == 1
    assert d.stub.RenewLease(pb.RenewLeaseRequest(lease_id=lease.lease_id), timeout=5).expires_at > 0
    assert d.stub.ReleaseLease(pb.ReleaseLeaseRequest(lease_id=lease.lease_id), timeout=5).remaining == 0
    # A new watcher asking for the last 3 events gets exactly those, in order, then live ones.
    wait_until(lambda: len(d.find_events()) >= 3)
    stream = d.stub.WatchProcessEvents(pb.WatchProcessEventsRequest(replay=3, service="svc"), timeout=10)
    replayed = [next(stream) for _ in range(3)]
    svc_events = d.find_events()
    svc_events = [e for e in svc_events if e.service == "svc"]
    assert [e.seq for e in replayed] == [e.seq for e in svc_events[-3:]]
    d.stub.SignalProcess(
        pb.SignalProcessRequest(service="svc", instance_id="svc-1", signal="SIGTERM"), timeout=5
    )
    live = next(stream)
    stream.cancel()
    assert live.seq > replayed[-1].seq and live.kind == pb.PROCESS_EVENT_KIND_SIGNALED


def test_list_process_events_pages_by_seq(d: LabDaemon) -> None:
    everything = d.stub.ListProcessEvents(pb.ListProcessEventsRequest(), timeout=5).events
    seqs = [e.seq for e in everything]
    assert seqs == sorted(seqs) and len(seqs) >= 4  # 2 x SPAWNED + 2 x READY at least
    page = d.stub.ListProcessEvents(pb.ListProcessEventsRequest(after_seq=seqs[0], limit=2), timeout=5).events
    assert [e.seq for e in page] == seqs[1:3]
    only = d.stub.ListProcessEvents(pb.ListProcessEventsRequest(service="svc"), timeout=5).events
    assert only and all(e.service == "svc" for e in only)
    code, _ = _code(lambda: d.stub.ListProcessEvents(pb.ListProcessEventsRequest(service="nope"), timeout=5))
    assert code == grpc.StatusCode.NOT_FOUND
