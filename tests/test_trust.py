"""Only the lab's owner drives the lab: file modes, the token on every RPC, RunJob's environment.

One real lab (the project's lab.yaml: broker, health, logger, loadgen, chaos, config, state, two
Python calculators and the TypeScript one, under a real supervisor daemon) is tried as an outsider
would: every RPC of every service without the token, with a wrong one, and from another uid
(``setpriv`` to nobody) that can read neither the token nor the lab's files.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from leaks import listening_ports, wait_until_gone
from procs.labd import ROOT, LabDaemon

import calculator.v1.calculator_pb2  # noqa: F401 - registers calculator.v1 in the descriptor pool
import runtime.v1.broker_pb2  # noqa: F401
import runtime.v1.chaos_pb2  # noqa: F401
import runtime.v1.config_pb2  # noqa: F401
import runtime.v1.health_pb2  # noqa: F401
import runtime.v1.load_pb2  # noqa: F401
import runtime.v1.logger_pb2  # noqa: F401
import runtime.v1.state_pb2  # noqa: F401
from runtime.client import auth
from runtime.v1 import supervisor_pb2 as pb

pytestmark = pytest.mark.integration

# lab.yaml service -> the gRPC service whose every RPC must refuse a caller without the token.
SERVICES = {
    "broker": "runtime.v1.BrokerService",
    "health": "runtime.v1.HealthService",
    "logger": "runtime.v1.LoggerService",
    "loadgen": "runtime.v1.LoadGeneratorService",
    "chaos": "runtime.v1.ChaosService",
    "config": "runtime.v1.ConfigService",
    "state": "runtime.v1.StateService",
    "calculator": "calculator.v1.CalculatorService",
    "calculator-ts": "calculator.v1.CalculatorService",
}
SUPERVISOR = "runtime.v1.SupervisorService"
CALL_TIMEOUT_S = 5.0
OUTSIDER_UID = 65534  # nobody
LAB_START_S = 60.0
SETPRIV = shutil.which("setpriv")


def methods(grpc_service: str) -> list[tuple[str, str]]:
    """(path, kind) of every RPC of ``grpc_service``; kind is unary/server/client/bidi streaming."""
    svc = descriptor_pool.Default().FindServiceByName(grpc_service)
    out = []
    for m in svc.methods:
        kind = {
            (False, False): "unary",
            (False, True): "server",
            (True, False): "client",
            (True, True): "bidi",
        }[(m.client_streaming, m.server_streaming)]
        out.append((f"/{svc.full_name}/{m.name}", kind))
    return out


def raw_call(
    channel: grpc.Channel, path: str, kind: str, metadata: tuple[tuple[str, str], ...] = ()
) -> tuple[str, str]:
    """Call ``path`` with an empty request (raw bytes, no stubs); (status name, details)."""
    try:
        if kind == "unary":
            channel.unary_unary(path)(b"", timeout=CALL_TIMEOUT_S, metadata=metadata)
        elif kind == "server":
            for _ in channel.unary_stream(path)(b"", timeout=CALL_TIMEOUT_S, metadata=metadata):
                break
        elif kind == "client":
            channel.stream_unary(path)(iter(()), timeout=CALL_TIMEOUT_S, metadata=metadata)
        else:
            for _ in channel.stream_stream(path)(iter(()), timeout=CALL_TIMEOUT_S, metadata=metadata):
                break
    except grpc.RpcError as exc:
        return exc.code().name, exc.details() or ""  # type: ignore[attr-defined]
    return "OK", ""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabDaemon]:
    """The project's whole lab in a lab dir whose parent others may enter (so modes are what protect it).

    The lab dir starts out as an older version left it (0755, a 0644 log): the daemon must tighten it.
    """
    if not (ROOT / "calculator/node/dist/server.js").exists():
        pytest.fail("the TypeScript calculator is not built; run `make polyglot`", pytrace=False)
    parent = tmp_path_factory.mktemp("trust")
    parent.chmod(0o755)
    lab_dir = parent / "lab"
    lab_dir.mkdir(mode=0o755)
    lab_dir.chmod(0o755)
    stale = lab_dir / "supervisor.log"
    stale.write_text("an older run\n")
    stale.chmod(0o644)
    before = listening_ports([str(parent)])
    daemon = LabDaemon(lab_dir, ROOT / "lab.yaml", linger_s=60).start()
    try:
        for name in [*SERVICES, "calculator"]:
            for info in daemon.processes(name).values():
                daemon.wait_state(info.instance_id, pb.PROCESS_STATE_RUNNING, LAB_START_S)
        yield daemon
    finally:
        daemon.stop()
        left = wait_until_gone([str(parent)], before)
        assert not left, f"the trust lab left processes or ports behind:\n{left}"


def addresses(lab: LabDaemon) -> dict[str, str]:
    """lab.yaml service -> 127.0.0.1:port of its first instance, plus "supervisor"."""
    out = {"supervisor": lab.info["address"]}
    for p in lab.processes().values():
        if p.service in SERVICES and p.service not in out:
            out[p.service] = f"127.0.0.1:{p.port}"
    return out


def every_rpc(lab: LabDaemon) -> list[tuple[str, str, str, str]]:
    """(service, address, path, kind) of every RPC of every lab service and the supervisor."""
    addr = addresses(lab)
    rows = [("supervisor", addr["supervisor"], path, kind) for path, kind in methods(SUPERVISOR)]
    for service, grpc_service in SERVICES.items():
        rows += [(service, addr[service], path, kind) for path, kind in methods(grpc_service)]
    return rows


# -- (a) modes ------------------------------------------------------------------------------


def test_lab_dir_is_0700_and_every_file_in_it_0600(lab: LabDaemon) -> None:
    lab_dir = lab.lab_dir
    # The logger, config and state services have their SQLite files open once they serve.
    expected = {"supervisor.json", "supervisor.lock", "supervisor.log", "token"}
    expected |= {
        f"{db}.sqlite{suffix}" for db in ("logs", "config", "state") for suffix in ("", "-wal", "-shm")
    }
    names = {p.name for p in lab_dir.iterdir()}
    assert expected <= names, f"missing from {lab_dir}: {expected - names}"
    assert stat.S_IMODE(lab_dir.stat().st_mode) == 0o700
    wrong = {}
    for folder, dirs, files in os.walk(lab_dir):
        for d in dirs:
            if stat.S_IMODE(os.stat(os.path.join(folder, d)).st_mode) != 0o700:
                wrong[os.path.join(folder, d)] = oct(stat.S_IMODE(os.stat(os.path.join(folder, d)).st_mode))
        for f in files:
            mode = stat.S_IMODE(os.lstat(os.path.join(folder, f)).st_mode)
            if mode != 0o600:
                wrong[os.path.join(folder, f)] = oct(mode)
    assert not wrong, f"not owner-only: {wrong}"
    assert len((lab_dir / "token").read_text().strip()) >= 43  # secrets.token_urlsafe(32)


# -- (b) no token, wrong token, health without ----------------------------------------------


def test_every_rpc_of_every_service_refuses_a_call_without_the_token(lab: LabDaemon) -> None:
    token_file = str(lab.lab_dir / "token")
    refused: dict[str, tuple[str, str]] = {}
    channels = {}
    try:
        for service, address, path, kind in every_rpc(lab):
            ch = channels.setdefault(address, grpc.insecure_channel(address))
            refused[f"{service} {path}"] = raw_call(ch, path, kind)
            wrong = raw_call(ch, path, kind, auth.metadata("not-the-token"))
            assert wrong[0] == "UNAUTHENTICATED" and token_file in wrong[1], (service, path, wrong)
            assert "does not match" in wrong[1]
    finally:
        for ch in channels.values():
            ch.close()
    not_refused = {k: v for k, v in refused.items() if v[0] != "UNAUTHENTICATED" or token_file not in v[1]}
    assert not not_refused, f"answered without the token: {not_refused}"
    # Every service was tried, with every one of its RPCs (the supervisor has 16, and so on).
    assert {k.split()[0] for k in refused} == {"supervisor", *SERVICES}
    assert len(refused) == sum(len(methods(s)) for s in [SUPERVISOR, *SERVICES.values()])
    message = next(iter(refused.values()))[1]
    assert message.startswith("this lab requires its token: send 'authorization: Bearer <token>'")


def test_health_and_reflection_answer_without_the_token(lab: LabDaemon) -> None:
    for service, address in addresses(lab).items():
        if service == "supervisor":
            continue
        with grpc.insecure_channel(address) as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT_S
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
            code, _ = raw_call(ch, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "bidi")
            assert code == "OK", (service, code)
    # The supervisor's own health (if it serves grpc.health.v1) is never behind the token either.
    with grpc.insecure_channel(lab.info["address"]) as ch:
        code, details = raw_call(ch, "/grpc.health.v1.Health/Check", "unary")
        assert code in ("OK", "UNIMPLEMENTED"), (code, details)


def test_the_token_lets_calls_through(lab: LabDaemon) -> None:
    # The lab's own clients (a job in each language) find the token and are served.
    for language in ("python", "typescript"):
        reply = lab.stub.RunJob(
            pb.RunJobRequest(job=f"client-{language}", args=["add", "2", "3"]), timeout=60
        )
        assert reply.exit_code == 0, (language, reply.stdout, reply.stderr)
    addr = addresses(lab)
    with auth.insecure_channel(addr["config"], token=lab.token) as ch:
        code, _ = raw_call(ch, "/runtime.v1.ConfigService/ListConfigs", "unary")
    assert code == "OK"


# -- (c) another uid --------------------------------------------------------------------------

OUTSIDER = r"""
import json, sys
import grpc

spec = json.load(open(sys.argv[1]))
out = {"reads": {}, "calls": {}}
for path in spec["paths"]:
    try:
        with open(path, "rb") as fh:
            fh.read(1)
        out["reads"][path] = "read"
    except OSError as exc:
        out["reads"][path] = type(exc).__name__
channels = {}
for service, address, path, kind in spec["rpcs"]:
    ch = channels.setdefault(address, grpc.insecure_channel(address))
    try:
        if kind == "unary":
            ch.unary_unary(path)(b"", timeout=5)
        elif kind == "server":
            next(iter(ch.unary_stream(path)(b"", timeout=5)), None)
        elif kind == "client":
            ch.stream_unary(path)(iter(()), timeout=5)
        else:
            next(iter(ch.stream_stream(path)(iter(()), timeout=5)), None)
        out["calls"][service + " " + path] = ["OK", ""]
    except grpc.RpcError as exc:
        out["calls"][service + " " + path] = [exc.code().name, exc.details() or ""]
print(json.dumps(out))
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or SETPRIV is None, reason="needs root and setpriv to become another uid"
)
def test_another_uid_can_read_nothing_and_is_refused_everywhere(lab: LabDaemon) -> None:
    pid = lab.processes("calculator")["calculator-1"].pid
    paths = [str(lab.lab_dir / n) for n in ("token", "logs.sqlite", "supervisor.json")]
    paths += [f"/proc/{pid}/environ"]  # where LAB_TOKEN lives in a lab process
    rpcs = every_rpc(lab)
    folder = Path(tempfile.mkdtemp(prefix="outsider-"))
    try:
        folder.chmod(0o755)
        (folder / "outsider.py").write_text(OUTSIDER)
        (folder / "spec.json").write_text(json.dumps({"paths": paths, "rpcs": rpcs}))
        for f in folder.iterdir():
            f.chmod(0o644)
        argv = [SETPRIV, f"--reuid={OUTSIDER_UID}", f"--regid={OUTSIDER_UID}", "--clear-groups",
                sys.executable, "-I", str(folder / "outsider.py"), str(folder / "spec.json")]  # fmt: skip
        env = {"PATH": "/usr/bin:/bin", "HOME": str(folder)}  # no LAB_* at all: an outsider's shell
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, env=env, cwd=folder, check=False
        )
    finally:
        shutil.rmtree(folder)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["reads"] == dict.fromkeys(paths, "PermissionError")
    calls = result["calls"]
    assert len(calls) == len(rpcs)
    token_file = str(lab.lab_dir / "token")
    let_in = {k: v for k, v in calls.items() if v[0] != "UNAUTHENTICATED" or token_file not in v[1]}
    assert not let_in, f"another uid got through: {let_in}"


# -- (d) RunJob's environment -----------------------------------------------------------------


def test_run_job_refuses_environment_that_could_run_the_callers_code(lab: LabDaemon, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (evil / "hook.js").write_text(f"require('fs').writeFileSync({str(marker)!r}, 'ran');\n")
    attempts = [
        ("client-python", {"PYTHONPATH": str(evil)}, "PYTHONPATH"),
        ("client-typescript", {"NODE_OPTIONS": f"--require {evil / 'hook.js'}"}, "NODE_OPTIONS"),
        ("client-python", {"LD_PRELOAD": "/tmp/x.so", "LAB_CORRELATION_ID": "req-1"}, "LD_PRELOAD"),
        ("client-python", {"LAB_TOKEN": "mine"}, "LAB_TOKEN"),
    ]
    for job, env, key in attempts:
        with pytest.raises(grpc.RpcError) as info:
            lab.stub.RunJob(pb.RunJobRequest(job=job, args=["add", "2", "3"], env=env), timeout=30)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (job, key)
        assert (
            f"{key!r} is not allowed" in info.value.details() and "LAB_CORRELATION_ID" in info.value.details()
        )
    assert not marker.exists()
    huge = "K" * 100_000
    with pytest.raises(grpc.RpcError) as info:
        lab.stub.RunJob(pb.RunJobRequest(job="client-python", env={huge: "1"}), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and len(info.value.details()) < 600


def test_run_job_allows_the_correlation_id(lab: LabDaemon) -> None:
    reply = lab.stub.RunJob(
        pb.RunJobRequest(
            job="client-python", args=["add", "2", "3"], env={"LAB_CORRELATION_ID": "req-trust-7"}
        ),
        timeout=60,
    )
    assert reply.exit_code == 0, reply.stderr
    lines = [json.loads(line) for line in reply.stdout.splitlines() if line.startswith("{")]
    assert lines and all(entry["correlation_id"] == "req-trust-7" for entry in lines), reply.stdout
