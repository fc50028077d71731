"""Random bytes to every RPC of every lab service: each answers with a status, none dies, the lab
still works afterwards, and the logs hold one line per malformed request, not a traceback.

The RPCs come from the generated descriptors (every service of runtime.v1 and calculator.v1), the
addresses from the instances themselves (server reflection, which every lab server serves,
the supervisor included). ``PER_RPC`` bodies per method from a fixed seed, each call with a
deadline; unary and server-streaming calls send one body, client- and bidi-streaming calls a
stream of one. The bodies: the empty request, random bytes (which mostly fail to decode), and
random messages built from the method's descriptor (every field set to an edge value: empty,
100 KB, control characters, negative, huge, unknown enum numbers), which decode and so reach the
handlers, where the services must refuse them on their merits. Random strings never hold ':' or
'.', so no field can name a host to connect to: all traffic stays on 127.0.0.1.

One exception: SupervisorService/Shutdown only gets bodies that do not decode. An empty (or any
decodable) ShutdownRequest is a valid request to stop the lab, which the supervisor rightly obeys.
"""

from __future__ import annotations

import importlib
import pkgutil
import random
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from waiting import wait_until

import calculator.v1
import runtime.v1
from calculator.v1 import calculator_pb2, calculator_pb2_grpc
from runtime.lab import Lab
from runtime.v1 import (
    config_pb2,
    config_pb2_grpc,
    logger_pb2,
    logger_pb2_grpc,
    supervisor_pb2,
    supervisor_pb2_grpc,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261201
PER_RPC = 20
MAX_BODY_BYTES = 512
UNARY_DEADLINE_S = 3.0
STREAM_DEADLINE_S = 0.5  # a stream whose request decoded may stay open: cut it short
WORKERS = 8
RPC_S = 5.0
SHUTDOWN = "/runtime.v1.SupervisorService/Shutdown"
MAX_DETAILS = 3000  # a quoted 200 characters (escaped) plus the message around them


def lab_metadata(lab_dir: Path) -> list[tuple[str, str]]:
    """The lab's token as call metadata, once the lab has one, so the fuzz reaches the handlers."""
    token = lab_dir / "token"
    return [("authorization", f"Bearer {token.read_text().strip()}")] if token.exists() else []


def lab_services() -> dict[str, ServiceDescriptor]:
    """Every gRPC service of the lab's contracts, by full name, from the generated descriptors."""
    found: dict[str, ServiceDescriptor] = {}
    for package in (runtime.v1, calculator.v1):
        for info in pkgutil.iter_modules(package.__path__):
            if info.name.endswith("_pb2"):
                module = importlib.import_module(f"{package.__name__}.{info.name}")
                for service in module.DESCRIPTOR.services_by_name.values():
                    found[service.full_name] = service
    return found


def served_by(address: str, metadata) -> set[str]:
    """The services an instance names through server reflection."""
    with grpc.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        replies = stub.ServerReflectionInfo(iter([request]), timeout=RPC_S, metadata=metadata)
        return {s.name for reply in replies for s in reply.list_services_response.service}


def bodies(method: MethodDescriptor, rng: random.Random) -> Iterator[bytes]:
    """PER_RPC bodies for one method: the empty request, then random bytes and random messages."""
    request_type = message_factory.GetMessageClass(method.input_type)
    shutdown = f"/{method.containing_service.full_name}/{method.name}" == SHUTDOWN
    sent = 0
    while sent < PER_RPC:
        if sent == 0 and not shutdown:
            body = b""
        elif sent % 2 or shutdown:
            body = rng.randbytes(rng.randint(1, MAX_BODY_BYTES))
        else:
            body = random_message(method.input_type, rng).SerializeToString()
        if shutdown and decodes(request_type, body):
            continue  # a decodable Shutdown is a valid request to stop the lab
        yield body
        sent += 1


# Strings without ':' and '.' (no field can name a host), with control and non-ASCII characters.
ALPHABET = "abcXYZ019 _-/\\'\"%*?\x00\x07\n\t\u00e9\u4e2d\U0001f600"
STRING_LENGTHS = (0, 1, 8, 300, 100_000)
INT32_EDGES = (0, 1, -1, 2**31 - 1, -(2**31))
INT64_EDGES = (*INT32_EDGES, 2**63 - 1, -(2**63))
UINT_EDGES = (0, 1, 2**32 - 1)
FLOAT_EDGES = (0.0, -1.0, 1e308, float("nan"), float("inf"), -float("inf"))


def random_message(descriptor: Descriptor, rng: random.Random, depth: int = 0) -> Message:
    """A message of ``descriptor``'s type with every field set to a random edge value."""
    message = message_factory.GetMessageClass(descriptor)()
    for field in descriptor.fields:
        if rng.random() < 0.2:
            continue  # some fields unset
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            target = getattr(message, field.name)
            key_field, value_field = (
                field.message_type.fields_by_name["key"],
                field.message_type.fields_by_name["value"],
            )
            for _ in range(rng.randint(0, 2)):
                key = random_scalar(key_field, rng)
                if value_field.message_type is not None:
                    if depth < 2:
                        target[key].CopyFrom(random_message(value_field.message_type, rng, depth + 1))
                else:
                    target[key] = random_scalar(value_field, rng)
        elif field.is_repeated:
            items = getattr(message, field.name)
            for _ in range(rng.randint(0, 3)):
                if field.message_type is not None:
                    if depth < 2:
                        items.add().CopyFrom(random_message(field.message_type, rng, depth + 1))
                else:
                    items.append(random_scalar(field, rng))
        elif field.message_type is not None:
            if depth < 2:
                getattr(message, field.name).CopyFrom(random_message(field.message_type, rng, depth + 1))
        else:
            setattr(message, field.name, random_scalar(field, rng))
    return message


def random_scalar(field: FieldDescriptor, rng: random.Random) -> object:
    """An edge value of a scalar field's type."""
    kind = field.cpp_type
    if kind == FieldDescriptor.CPPTYPE_STRING:
        size = rng.choice(STRING_LENGTHS)
        if field.type == FieldDescriptor.TYPE_BYTES:
            return rng.randbytes(size)
        return "".join(rng.choice(ALPHABET) for _ in range(min(size, 300))) * max(1, size // 300)
    if kind == FieldDescriptor.CPPTYPE_BOOL:
        return rng.random() < 0.5
    if kind == FieldDescriptor.CPPTYPE_ENUM:
        return rng.choice([v.number for v in field.enum_type.values] + [999])
    if kind in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
        return rng.choice((*FLOAT_EDGES, rng.uniform(-1e6, 1e6)))
    if kind == FieldDescriptor.CPPTYPE_INT32:
        return rng.choice((*INT32_EDGES, rng.randint(-1000, 10**6)))
    if kind == FieldDescriptor.CPPTYPE_INT64:
        return rng.choice((*INT64_EDGES, rng.randint(-1000, 10**9)))
    return rng.choice((*UINT_EDGES, rng.randint(0, 10**6)))


def decodes(request_type, body: bytes) -> bool:
    try:
        request_type.FromString(body)
    except DecodeError:
        return False
    return True


def first(served: dict[str, str]) -> str:
    return next(iter(served.values()))


def send(channel: grpc.Channel, method: MethodDescriptor, body: bytes, metadata) -> tuple[str, str]:
    """One call with raw bytes; the status it ended with (OK for a clean answer or stream end)."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    deadline = STREAM_DEADLINE_S if method.server_streaming else UNARY_DEADLINE_S
    try:
        if method.client_streaming and method.server_streaming:
            for _ in channel.stream_stream(path)(iter([body]), timeout=deadline, metadata=metadata):
                pass
        elif method.client_streaming:
            channel.stream_unary(path)(iter([body]), timeout=deadline, metadata=metadata)
        elif method.server_streaming:
            for _ in channel.unary_stream(path)(body, timeout=deadline, metadata=metadata):
                pass
        else:
            channel.unary_unary(path)(body, timeout=deadline, metadata=metadata)
    except grpc.RpcError as err:
        return err.code().name, err.details() or ""
    return "OK", ""


def test_random_bytes_to_every_rpc_leave_every_service_up_and_the_lab_correct(lab_dir: Path):
    lab = Lab.up(lab_dir=lab_dir, config=ROOT / "lab.yaml", linger_s=2, timeout_s=60)
    try:
        md = lab_metadata(lab_dir)
        before = lab.status()
        running = before[before.state == "RUNNING"]
        pids = {row.instance: int(row.pid) for row in running.itertuples()}
        # Where each gRPC service is served: every instance (and the supervisor) names its services.
        # One instance of each lab service that serves it (the Python and the TypeScript
        # calculator both serve CalculatorService); the pids of all instances are checked.
        addresses: dict[str, dict[str, str]] = {"runtime.v1.SupervisorService": {"supervisor": lab.address}}
        for row in running.itertuples():
            for name in served_by(f"127.0.0.1:{int(row.port)}", md):
                addresses.setdefault(name, {}).setdefault(row.service, f"127.0.0.1:{int(row.port)}")
        services = lab_services()
        missing = set(services) - set(addresses)
        # The lab file may skip a service whose toolchain is missing; every other one is fuzzed.
        skipped = set(before[before.state != "RUNNING"].service)
        assert not missing or skipped, f"no instance serves {sorted(missing)}"

        rng = random.Random(SEED)
        work = [
            (address, method, body)
            for name, service in sorted(services.items())
            for method in service.methods
            for body in bodies(method, rng)
            for address in addresses.get(name, {}).values()
        ]
        channels = {a: grpc.insecure_channel(a) for a in {a for a, _, _ in work}}
        t0 = time.monotonic()
        try:
            with ThreadPoolExecutor(WORKERS) as pool:
                answers = list(
                    pool.map(lambda w: (w[1].full_name, *send(channels[w[0]], w[1], w[2], md)), work)
                )
        finally:
            for channel in channels.values():
                channel.close()
        elapsed = time.monotonic() - t0
        rpcs = {name for name, _, _ in answers}
        servers = len({a for a, _, _ in work})
        print(
            f"\nfuzz: {len(rpcs)} RPCs x {PER_RPC} requests to {servers} servers = {len(answers)} calls in {elapsed:.1f} s"
        )
        print("statuses:", dict(Counter(code for _, code, _ in answers).most_common()))
        assert len(answers) == len(work) and len(rpcs) >= 40, sorted(rpcs)
        # Every refusal fits in a status message: input is quoted at most ~200 characters. An echo
        # of a 100 KB field used to turn INVALID_ARGUMENT into the client's RESOURCE_EXHAUSTED.
        too_long = [
            (name, code, details[:200]) for name, code, details in answers if len(details) > MAX_DETAILS
        ]
        assert not too_long, too_long[:5]
        echoed = [(name, details[:200]) for name, _, details in answers if "metadata size exceeds" in details]
        assert not echoed, echoed[:5]

        # Every process is still there, the same process: nothing crashed and was restarted.
        after = lab.status()
        now = {row.instance: int(row.pid) for row in after[after.state == "RUNNING"].itertuples()}
        assert now == pids, (pids, now)
        assert (after.set_index("instance").restarts == before.set_index("instance").restarts).all()
        # And the lab still does its job: a calculation, a config round-trip.
        for address in addresses["calculator.v1.CalculatorService"].values():
            with grpc.insecure_channel(address) as channel:
                reply = calculator_pb2_grpc.CalculatorServiceStub(channel).Add(
                    calculator_pb2.AddRequest(a=2, b=3), timeout=RPC_S, metadata=md
                )
                assert reply.result == 5, address
        with grpc.insecure_channel(first(addresses["runtime.v1.ConfigService"])) as channel:
            config = config_pb2_grpc.ConfigServiceStub(channel)
            entry = config_pb2.ConfigEntry(namespace="fuzz", key="roundtrip", value="42", value_type="int")
            version = config.SetConfig(entry, timeout=RPC_S, metadata=md).version
            got = config.GetConfig(
                config_pb2.ConfigKey(namespace="fuzz", key="roundtrip"), timeout=RPC_S, metadata=md
            )
            assert (got.value, got.version) == ("42", version)
        # Malformed requests are one log line each, in the supervisor's log and the services' logs.
        supervisor_log = (lab_dir / "supervisor.log").read_text(errors="replace")
        assert "malformed request to /runtime.v1.SupervisorService/" in supervisor_log
        assert "Traceback" not in supervisor_log, supervisor_log[supervisor_log.find("Traceback") - 300 :][
            :2000
        ]
        with grpc.insecure_channel(first(addresses["runtime.v1.LoggerService"])) as channel:
            logs = logger_pb2_grpc.LoggerServiceStub(channel)

            def search(text: str) -> list[logger_pb2.LogEntry]:
                query = logger_pb2.LogQuery(search_text=text, limit=10_000)
                return list(logs.QueryLogs(query, timeout=RPC_S, metadata=md))

            def senders() -> set[str]:
                return {e.service_name for e in search("malformed")}

            # Shipped in batches: wait for the services' own lines to arrive.
            expected = {"broker", "config"}  # through stderr (the broker) and through log shipping
            try:
                wait_until(lambda: senders() >= expected, 15, "a 'malformed request' line from each")
            except AssertionError:
                pytest.fail(
                    f"'malformed request' lines came from {sorted(senders())}, not {sorted(expected)}"
                )
            tracebacks = search("Traceback")
            assert not tracebacks, [f"{e.instance_id}: {e.message[:500]}" for e in tracebacks[:3]]
    finally:
        lab.down()


def test_supervisor_serves_health_and_reflection_and_refuses_an_unset_signal(lab_factory):
    lab = lab_factory("small")
    md = lab_metadata(lab.lab_dir)
    with grpc.insecure_channel(lab.address) as channel:
        # Like every lab service: grpc_health_probe and grpcurl work against the supervisor too.
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=RPC_S)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert {"runtime.v1.SupervisorService", "grpc.health.v1.Health"} <= served_by(lab.address, [])
        supervisor = supervisor_pb2_grpc.SupervisorServiceStub(channel)
        pid = int(lab.status("calculator").pid.iloc[0])
        with pytest.raises(grpc.RpcError) as err:
            supervisor.SignalProcess(
                supervisor_pb2.SignalProcessRequest(service="calculator"), timeout=RPC_S, metadata=md
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "signal is not set" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            supervisor.SignalProcess(
                supervisor_pb2.SignalProcessRequest(service="calculator", signal="X" * 100_000),
                timeout=RPC_S,
                metadata=md,
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and len(err.value.details()) < 600
    # Nobody was signalled: the calculator runs on, the same process.
    assert int(lab.status("calculator").pid.iloc[0]) == pid
