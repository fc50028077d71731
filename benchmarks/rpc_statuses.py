"""Every RPC of every lab service, and the status it answers to four kinds of bad call.

    .venv/bin/python benchmarks/rpc_statuses.py > statuses.md

Starts the default lab (lab.yaml) in a temporary directory and calls each method of each running
service with: no token; the empty request (with the token); every string field 100 KB long;
every string field naming something that does not exist ("no-such-name"). Prints a Markdown
table of the status codes (a server stream that opens and stays quiet is "OK (open)"). Not a
timed benchmark: it documents the lab's answers (issue 9's table) and exits 0 once it measured.
SupervisorService/Shutdown gets only the no-token call: any decodable request stops the lab.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from calculator.v1 import calculator_pb2  # noqa: E402
from runtime.lab import Lab  # noqa: E402
from runtime.v1 import (  # noqa: E402
    broker_pb2,
    chaos_pb2,
    config_pb2,
    health_pb2,
    load_pb2,
    logger_pb2,
    state_pb2,
    supervisor_pb2,
)

DEADLINE_S = 2.0
STREAM_DEADLINE_S = 0.5
BIG = "x" * 100_000
UNKNOWN = "no-such-name"
# gRPC service -> lab service whose first instance serves it ("" = the supervisor itself).
SERVICES = {
    supervisor_pb2: ("SupervisorService", ""),
    broker_pb2: ("BrokerService", "broker-1"),
    health_pb2: ("HealthService", "health-1"),
    logger_pb2: ("LoggerService", "logger-1"),
    load_pb2: ("LoadGeneratorService", "loadgen-1"),
    chaos_pb2: ("ChaosService", "chaos-1"),
    config_pb2: ("ConfigService", "config-1"),
    state_pb2: ("StateService", "state-1"),
    calculator_pb2: ("CalculatorService", "calculator-1"),
}


def fill(message: Any, value: str) -> Any:
    """Every string field of ``message`` (and of its message fields, one level down) set to ``value``."""
    for field in message.DESCRIPTOR.fields:
        if field.is_repeated:
            if field.type == FieldDescriptor.TYPE_STRING:
                getattr(message, field.name).append(value)
            continue
        if field.type == FieldDescriptor.TYPE_STRING:
            setattr(message, field.name, value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.fields:
            nested = getattr(message, field.name)
            for sub in field.message_type.fields:
                if sub.type == FieldDescriptor.TYPE_STRING and not sub.is_repeated:
                    setattr(nested, sub.name, value)
    return message


def call(channel: grpc.Channel, method: MethodDescriptor, request: Any, metadata: list[tuple[str, str]]) -> str:
    """The status name of one call (streams: the first message, or how they end)."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    response = message_factory.GetMessageClass(method.output_type)
    kind = {(False, False): "unary_unary", (False, True): "unary_stream",
            (True, False): "stream_unary", (True, True): "stream_stream"}[
        (method.client_streaming, method.server_streaming)]  # fmt: skip
    stub = getattr(channel, kind)(path, request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=response.FromString)  # fmt: skip
    body = iter([request]) if method.client_streaming else request
    try:
        if method.server_streaming:
            stream = stub(body, metadata=metadata, timeout=STREAM_DEADLINE_S)
            next(stream, None)
            stream.cancel()
            return "OK"
        stub(body, metadata=metadata, timeout=DEADLINE_S)
        return "OK"
    except grpc.RpcError as err:
        code = err.code()
        if method.server_streaming and code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return "OK (open)"
        return code.name


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="rpc-statuses-"))
    lab = Lab.up(lab_dir=tmp / "lab", config=ROOT / "lab.yaml", linger_s=1)
    rows = ["| RPC | no token | empty request | 100 KB strings | unknown names |", "|---|---|---|---|---|"]
    try:
        ports = lab.status().set_index("instance").port
        token = [("authorization", f"Bearer {lab.token}")]
        for module, (name, instance) in SERVICES.items():
            if instance and instance not in ports.index:
                rows.append(f"| {name} | (not running here) | | | |")
                continue
            address = lab.address if not instance else f"127.0.0.1:{int(ports[instance])}"
            service = module.DESCRIPTOR.services_by_name[name]
            with grpc.insecure_channel(address) as channel:
                for method in service.methods:
                    request_class = message_factory.GetMessageClass(method.input_type)
                    cells = [call(channel, method, request_class(), [])]
                    if method.name == "Shutdown":
                        cells += ["(not sent: stops the lab)"] * 3
                    else:
                        cells += [
                            call(channel, method, request_class(), token),
                            call(channel, method, fill(request_class(), BIG), token),
                            call(channel, method, fill(request_class(), UNKNOWN), token),
                        ]
                    rows.append(f"| {name}/{method.name} | " + " | ".join(cells) + " |")
    finally:
        lab.down()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
