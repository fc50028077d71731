"""The polyglot calculator over real processes: every client x every server, through a real broker.

Each server language gets its own small lab (broker, for Python also the logger that stores the
Python server's log entries, and one calculator server) so the client's random pick can only land
on that language. Clients run as subprocesses with the env contract of runtime/identity.py; every
child carries LAB_DIR under the test's tmp dir and is stopped by pid.

A client whose build is missing is skipped with the reason (``make polyglot``), except under CI
(``CI`` or ``LAB_REQUIRE_POLYGLOT=1``), where the whole matrix must run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from runtime.identity import parse_ready_line
from runtime.v1 import broker_pb2, broker_pb2_grpc, logger_pb2, logger_pb2_grpc

pytestmark = pytest.mark.polyglot

ROOT = Path(__file__).resolve().parent.parent
NODE_DIST = ROOT / "calculator" / "node" / "dist"
CALCULATOR = "calculator.v1.CalculatorService"
READY_TIMEOUT_S = 20.0
REGISTER_TIMEOUT_S = 10.0
CLIENT_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
LOG_WAIT_S = 5.0
CLIENT_LANGUAGES = ("python", "typescript", "rust", "cpp")
SERVER_LANGUAGES = ("python", "typescript")


def required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("LAB_REQUIRE_POLYGLOT") == "1"


def missing(what: str) -> None:
    """Skip (with the reason) or, where every toolchain is required, fail."""
    reason = f"{what}; build it with `make polyglot`"
    if required():
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def client_argv(language: str) -> list[str]:
    """The command of the ``client-<language>`` job in lab.yaml (skips when it is not built)."""
    if language == "python":
        return [sys.executable, "-m", "calculator.client"]
    if language == "typescript":
        node = shutil.which("node")
        script = NODE_DIST / "client.js"
        if node is None or not script.exists():
            missing(f"TypeScript client not available (node={node}, {script} exists={script.exists()})")
        return [str(node), str(script)]
    binary = {
        "rust": ROOT / "calculator" / "rust" / "target" / "release" / "calculator-client",
        "cpp": ROOT / "calculator" / "cpp" / "build" / "calculator-client",
    }[language]
    if not binary.exists():
        missing(f"{language} client not built ({binary} is missing)")
    return [str(binary)]


def server_argv(language: str) -> list[str]:
    if language == "python":
        return [sys.executable, "-m", "calculator.server"]
    node = shutil.which("node")
    script = NODE_DIST / "server.js"
    if node is None or not script.exists():
        missing(f"TypeScript server not available (node={node}, {script} exists={script.exists()})")
    return [str(node), str(script)]


@dataclass
class Child:
    """A lab child started by a test: output kept in memory, stopped by pid."""

    name: str
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    port: int = 0
    _ready: threading.Event = field(default_factory=threading.Event)
    _pump_thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._pump_thread = threading.Thread(target=self._pump, name=f"{self.name}-output", daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            port = parse_ready_line(line)
            if port and not self.port:
                self.port = port
                self._ready.set()
        self._ready.set()  # EOF: wake a waiter, who sees port == 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        if not self._ready.wait(READY_TIMEOUT_S) or not self.port:
            self.stop()
            raise AssertionError(f"{self.name} gave no READY line; output:\n" + "\n".join(self.lines[-30:]))

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal by pid, wait, SIGKILL if it does not go; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        if self._pump_thread is not None:
            self._pump_thread.join(STOP_TIMEOUT_S)  # EOF once the process is gone
        if self.proc.stdout is not None and not self._pump_thread_alive():
            self.proc.stdout.close()
        return self.proc.returncode

    def _pump_thread_alive(self) -> bool:
        return self._pump_thread is not None and self._pump_thread.is_alive()


def child_env(lab_dir: Path, service: str, instance: str, language: str, broker: str = "") -> dict[str, str]:
    env = dict(os.environ)
    for key in [k for k in env if k.startswith("LAB_")]:
        del env[key]
    env.update(
        LAB_DIR=str(lab_dir),
        LAB_SERVICE=service,
        LAB_INSTANCE=instance,
        LAB_LANGUAGE=language,
        LAB_PORT="0",
        LAB_SUPERVISOR_PID=str(os.getpid()),  # children that watch their parent see us
        PYTHONUNBUFFERED="1",
    )
    if broker:
        env["LAB_BROKER_ADDR"] = broker
    return env


def start(name: str, argv: list[str], env: dict[str, str]) -> Child:
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    child = Child(name, proc)
    child.wait_ready()
    return child


def lookup(broker: str, service: str = CALCULATOR) -> list[broker_pb2.ServiceInstance]:
    with grpc.insecure_channel(broker) as channel:
        stub = broker_pb2_grpc.BrokerServiceStub(channel)
        resp = stub.LookupService(broker_pb2.LookupServiceRequest(service_name=service), timeout=2)
        return list(resp.instances)


def wait_registered(
    broker: str, instance_id: str, service: str = CALCULATOR, *, present: bool = True
) -> None:
    deadline = time.monotonic() + REGISTER_TIMEOUT_S
    while time.monotonic() < deadline:
        ids = {i.instance_id for i in lookup(broker, service)}
        if (instance_id in ids) == present:
            return
        time.sleep(0.05)
    state = "registered" if present else "gone"
    raise AssertionError(f"{instance_id} not {state} at the broker within {REGISTER_TIMEOUT_S} s")


@dataclass
class Stack:
    """A broker and (optionally) one calculator server of one language."""

    language: str
    lab_dir: Path
    broker: Child
    children: list[Child]
    server: Child | None = None

    @property
    def broker_address(self) -> str:
        return self.broker.address

    def server_log_has(self, cid: str) -> str:
        """The server's log entry with ``cid`` (TS: its stdout; Python: the logger service)."""
        deadline = time.monotonic() + LOG_WAIT_S
        while time.monotonic() < deadline:
            if self.language == "typescript":
                assert self.server is not None
                hits = [ln for ln in self.server.lines if cid in ln]
            else:
                hits = self._logger_entries(cid)
            if hits:
                return hits[0]
            time.sleep(0.05)
        return ""

    def _logger_entries(self, cid: str) -> list[str]:
        found = lookup(self.broker_address, "runtime.v1.LoggerService")
        if not found:
            return []
        with grpc.insecure_channel(found[0].address) as channel:
            stub = logger_pb2_grpc.LoggerServiceStub(channel)
            query = logger_pb2.LogQuery(correlation_id=cid, service_names=["calculator"])
            return [
                f"[{e.service_name}] {e.correlation_id} {e.message}" for e in stub.QueryLogs(query, timeout=2)
            ]

    def stop(self) -> dict[str, int]:
        return {c.name: c.stop() for c in reversed(self.children)}


def start_stack(lab_dir: Path, server_language: str | None) -> Stack:
    lab_dir.mkdir(parents=True, exist_ok=True)
    broker = start(
        "broker",
        [sys.executable, "-m", "runtime.services.broker"],
        child_env(lab_dir, "broker", "broker-1", "python"),
    )
    stack = Stack(server_language or "", lab_dir, broker, [broker])
    try:
        if server_language == "python":
            logger = start(
                "logger",
                [sys.executable, "-m", "runtime.services.logger"],
                child_env(lab_dir, "logger", "logger-1", "python", broker.address),
            )
            stack.children.append(logger)
            wait_registered(broker.address, "logger-1", "runtime.v1.LoggerService")
        if server_language:
            service = "calculator" if server_language == "python" else "calculator-ts"
            instance = f"{service}-1"
            env = child_env(lab_dir, service, instance, server_language, broker.address)
            stack.server = start(service, server_argv(server_language), env)
            stack.children.append(stack.server)
            wait_registered(broker.address, instance)
    except BaseException:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="module", params=SERVER_LANGUAGES)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp(f"lab-{request.param}"), request.param)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def empty_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("lab-empty"), None)
    yield s
    s.stop()


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    elapsed_s: float

    @property
    def entries(self) -> list[dict]:
        out = []
        for line in self.stdout.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"client wrote a non-JSON line on stdout: {line!r}") from None
        return out

    def errors(self) -> list[dict]:
        return [e for e in self.entries if e.get("level") == "ERROR"]


def run_client(language: str, args: list[str], broker: str | None, lab_dir: Path) -> Run:
    env = child_env(lab_dir, f"client-{language}", f"client-{language}-1", language, broker or "")
    if broker is None:
        env.pop("LAB_BROKER_ADDR", None)
    started = time.monotonic()
    done = subprocess.run(
        client_argv(language) + args,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_S,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the matrix -------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENT_LANGUAGES)
def test_client_calls_server_through_broker(client: str, stack: Stack, tmp_path: Path) -> None:
    cid = f"req-{client}-{stack.language}-{os.getpid()}"
    run = run_client(client, ["add", "2", "3", "--correlation-id", cid], stack.broker_address, tmp_path)
    assert run.code == 0, f"{client} client failed ({run.code}):\n{run.stdout}\n{run.stderr}"
    entries = run.entries
    for e in entries:
        assert {"ts", "level", "message", "correlation_id", "service", "instance"} <= e.keys(), e
        assert isinstance(e["ts"], int) and e["ts"] > 1_600_000_000_000, e
    messages = [e["message"] for e in entries]
    assert "Calling Add(2,3)" in messages, messages
    result = next(e for e in entries if e["message"] == "Result: 5")
    assert result["result"] == 5
    assert result["correlation_id"] == cid
    assert result["served_by"]["language"] == stack.language
    assert result["served_by"]["instance_id"] == stack.server.name + "-1"  # type: ignore[union-attr]
    assert result["service"] == f"client-{client}"
    assert all(e["correlation_id"] == cid for e in entries if e["level"] == "INFO")
    server_line = stack.server_log_has(cid)
    assert server_line and "Add(2,3) = 5" in server_line, f"no server log entry with {cid}"
    assert f"{client} client called {stack.language} server" in messages, messages


@pytest.mark.parametrize("client", CLIENT_LANGUAGES)
def test_division_by_zero_is_invalid_argument(client: str, stack: Stack, tmp_path: Path) -> None:
    run = run_client(client, ["divide", "1", "0"], stack.broker_address, tmp_path)
    assert run.code != 0
    errors = run.errors()
    assert errors, run.stdout + run.stderr
    assert errors[-1]["grpc_code"] == "INVALID_ARGUMENT"
    assert errors[-1]["message"] == "INVALID_ARGUMENT: division by zero"


# -- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENT_LANGUAGES)
def test_broker_unreachable_names_the_address(client: str, tmp_path: Path) -> None:
    address = f"127.0.0.1:{closed_port()}"
    run = run_client(client, ["add", "1", "2", "--timeout-s", "2"], address, tmp_path)
    assert run.code == 1, run.stdout + run.stderr
    error = run.errors()[-1]
    assert address in error["message"]
    assert error["grpc_code"] in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
    assert run.elapsed_s < 5 + (2 if client == "python" else 0), f"took {run.elapsed_s:.1f} s"


@pytest.mark.parametrize("client", CLIENT_LANGUAGES)
def test_missing_broker_address_is_a_usage_error(client: str, tmp_path: Path) -> None:
    run = run_client(client, ["add", "1", "2"], None, tmp_path)
    assert run.code == 2, run.stdout + run.stderr
    assert "LAB_BROKER_ADDR" in run.errors()[-1]["message"]


@pytest.mark.parametrize("client", CLIENT_LANGUAGES)
def test_no_registered_servers(client: str, empty_stack: Stack, tmp_path: Path) -> None:
    run = run_client(client, ["add", "1", "2"], empty_stack.broker_address, tmp_path)
    assert run.code == 1, run.stdout + run.stderr
    message = run.errors()[-1]["message"]
    assert f"no instances of {CALCULATOR}" in message, message
    assert run.errors()[-1]["grpc_code"] == "NOT_FOUND"


@pytest.mark.parametrize("client", CLIENT_LANGUAGES)
def test_bad_usage_exits_2(client: str, tmp_path: Path) -> None:
    run = run_client(client, ["pow", "2", "x"], "127.0.0.1:1", tmp_path)
    assert run.code == 2
    assert "usage:" in run.errors()[-1]["message"]


def test_typescript_server_health_reflection_and_sigterm(empty_stack: Stack, tmp_path: Path) -> None:
    env = child_env(tmp_path, "calculator-ts", "calculator-ts-9", "typescript", empty_stack.broker_address)
    server = start("calculator-ts", server_argv("typescript"), env)
    try:
        wait_registered(empty_stack.broker_address, "calculator-ts-9")
        with grpc.insecure_channel(server.address) as channel:
            from grpc_health.v1 import health_pb2, health_pb2_grpc

            check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
            assert check.status == health_pb2.HealthCheckResponse.SERVING
            from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
                ProtoReflectionDescriptorDatabase,
            )

            services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
            assert {CALCULATOR, "grpc.health.v1.Health"} <= services, services
            # Graceful stop: a Watch sees NOT_SERVING before the process is gone.
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=CALCULATOR), timeout=STOP_TIMEOUT_S
            )
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            server.proc.send_signal(signal.SIGTERM)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
        assert server.stop(signal.SIGTERM) == 0, server.output()
        assert "calculator-ts-9 stopping: SIGTERM" in server.output()
        # Deregistered on the way out, not left to the lease TTL.
        assert "calculator-ts-9" not in {i.instance_id for i in lookup(empty_stack.broker_address)}
    finally:
        server.stop(signal.SIGKILL)


def test_typescript_server_speaks_connect_grpc_web_and_grpc_on_one_port(
    empty_stack: Stack, tmp_path: Path
) -> None:
    """One port: Connect JSON over HTTP/1.1 (what curl sends), gRPC-Web over HTTP/1.1, gRPC over h2c;
    the lab's token is required on every protocol, reflection answers the load generator."""
    import asyncio
    import http.client
    import struct

    from calculator.v1 import calculator_pb2, calculator_pb2_grpc
    from runtime.services.load.targets import reflect_target

    token = "s3cret-for-this-test"
    env = child_env(tmp_path, "calculator-ts", "calculator-ts-8", "typescript", empty_stack.broker_address)
    env["LAB_TOKEN"] = token
    server = start("calculator-ts", server_argv("typescript"), env)
    auth = {"authorization": f"Bearer {token}"}
    path = f"/{CALCULATOR}/Add"
    try:
        # curl -H 'content-type: application/json' -d '{"a":2,"b":3}' http://127.0.0.1:PORT/calculator.v1.CalculatorService/Add
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request(
            "POST",
            path,
            body=json.dumps({"a": 2, "b": 3}),
            headers={"content-type": "application/json", **auth},
        )
        reply = conn.getresponse()
        assert (reply.status, reply.version) == (200, 11)
        body = json.loads(reply.read())
        assert body["result"] == 5 and body["servedBy"]["language"] == "typescript", body
        conn.request("POST", path, body=b'{"a":2,"b":3}', headers={"content-type": "application/json"})
        refused = conn.getresponse()
        error = json.loads(refused.read())
        assert refused.status == 401 and error["code"] == "unauthenticated", error
        assert "this lab requires its token" in error["message"], error
        conn.request(
            "POST",
            f"/{CALCULATOR}/Divide",
            body=b'{"a":1,"b":0}',
            headers={"content-type": "application/json", **auth},
        )
        bad = conn.getresponse()
        assert bad.status == 400 and json.loads(bad.read()) == {
            "code": "invalid_argument",
            "message": "division by zero",
        }
        # gRPC-Web (binary): a length-prefixed message; the trailers come as the last frame.
        message = calculator_pb2.AddRequest(a=2.5, b=4).SerializeToString()
        frame = b"\x00" + struct.pack(">I", len(message)) + message
        conn.request("POST", path, body=frame, headers={"content-type": "application/grpc-web+proto", **auth})
        web = conn.getresponse()
        data = web.read()
        assert web.status == 200 and data[0] == 0, data
        size = struct.unpack(">I", data[1:5])[0]
        assert calculator_pb2.AddResponse.FromString(data[5 : 5 + size]).result == 6.5
        assert b"grpc-status:0" in data[5 + size :].replace(b" ", b"")
        # CORS only for the lab's web page (a `web` instance with its Connect address in metadata).
        web_origin = f"http://127.0.0.1:{closed_port()}"
        with grpc.insecure_channel(empty_stack.broker_address) as channel:
            web = broker_pb2.ServiceInstance(
                service_name="web", instance_id="web-1", address="127.0.0.1:1", pid=os.getpid(),
                metadata={"http": web_origin.removeprefix("http://")},
            )  # fmt: skip
            broker_pb2_grpc.BrokerServiceStub(channel).Register(
                broker_pb2.RegisterRequest(instance=web), timeout=5
            )
        preflight = {"origin": web_origin, "access-control-request-method": "POST"}
        conn.request("OPTIONS", path, headers=preflight)
        allowed = conn.getresponse()
        allowed.read()
        assert allowed.status == 204 and allowed.getheader("access-control-allow-origin") == web_origin
        assert "authorization" in (allowed.getheader("access-control-allow-headers") or "")
        conn.request("OPTIONS", path, headers={**preflight, "origin": "http://evil.example"})
        denied = conn.getresponse()
        denied.read()
        assert denied.status == 403 and denied.getheader("access-control-allow-origin") is None
        conn.close()
        # gRPC (HTTP/2 without TLS) on the same port.
        with grpc.insecure_channel(server.address) as channel:
            stub = calculator_pb2_grpc.CalculatorServiceStub(channel)
            assert (
                stub.Add(calculator_pb2.AddRequest(a=2, b=3), timeout=5, metadata=tuple(auth.items())).result
                == 5
            )
            with pytest.raises(grpc.RpcError) as info:
                stub.Add(
                    calculator_pb2.AddRequest(a=2, b=3),
                    timeout=5,
                    metadata=(("authorization", "Bearer wrong"),),
                )
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "does not match this lab's token" in info.value.details()
        target = asyncio.run(reflect_target(server.address, [CALCULATOR, "grpc.health.v1.Health"]))
        assert list(target.methods) == ["Add", "Subtract", "Multiply", "Divide"]
        assert server.stop(signal.SIGTERM) == 0, server.output()
    finally:
        server.stop(signal.SIGKILL)


def test_typescript_server_reregisters_after_broker_restart(tmp_path: Path) -> None:
    """The KeepAlive stream breaks with the broker; the server registers again with the new one."""
    stack = start_stack(tmp_path / "lab", "typescript")
    try:
        port = stack.broker.port
        assert stack.broker.stop(signal.SIGKILL) != 0
        env = child_env(stack.lab_dir, "broker", "broker-1", "python")
        env.update(LAB_PORT=str(port), LAB_PORT_STRICT="1")
        stack.broker = start("broker", [sys.executable, "-m", "runtime.services.broker"], env)
        stack.children[0] = stack.broker
        wait_registered(stack.broker_address, "calculator-ts-1")
        run = run_client(
            "rust" if (ROOT / "calculator/rust/target").exists() else "python",
            ["multiply", "2.5", "-4"],
            stack.broker_address,
            tmp_path,
        )
        assert run.code == 0, run.stdout
        result = next(e for e in run.entries if "result" in e)
        assert result["result"] == -10 and result["served_by"]["language"] == "typescript"
    finally:
        stack.stop()
