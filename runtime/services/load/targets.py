"""What the load generator can call, learned from the target itself through server reflection.

Every lab agent (Python and TypeScript) serves gRPC server reflection, so the load generator
needs no compiled stubs of the services it loads: it asks one instance for the file that
defines the service, builds the request and response classes from it, and calls the method by
its path. That is how grpcurl and ghz work too, and it keeps the runtime free of any one demo
application.

    target = await reflect_target("127.0.0.1:50051", ["calculator.v1.CalculatorService"])
    call = target.method("Add")           # raises PlanError for an unknown method
    call.request({"a": 2, "b": 3})        # AddRequest(a=2, b=3)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from runtime.services.load.schedule import PlanError

REFLECTION_TIMEOUT_S = 2.0
# What every agent serves beside its own API: never a load target.
INFRASTRUCTURE = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)


class TargetUnreachable(Exception):
    """The instance did not answer the reflection request (its message says why)."""


@dataclass(frozen=True)
class TargetMethod:
    """One unary method: its full gRPC path, its request class and its response class."""

    path: str
    request_class: Any
    response: Any

    def request(self, payload: dict[str, float]) -> Any:
        """The request message for ``payload`` (fields not given keep their protobuf defaults)."""
        try:
            return json_format.ParseDict(payload, self.request_class())
        except json_format.ParseError as exc:
            raise PlanError(f"payload does not fit {self.request_class.DESCRIPTOR.name}: {exc}") from None


@dataclass(frozen=True)
class Target:
    """A gRPC service the load generator can call: its unary methods, in the order declared."""

    grpc_service: str
    methods: dict[str, TargetMethod]

    @property
    def default_method(self) -> str:
        """The first unary method the service declares (what an empty LoadConfig.method means)."""
        return next(iter(self.methods))

    @property
    def payload_fields(self) -> tuple[str, ...]:
        """The request fields of the default method, in declaration order."""
        desc = self.methods[self.default_method].request_class.DESCRIPTOR
        return tuple(f.name for f in desc.fields)

    def method(self, name: str) -> TargetMethod:
        """The method ``name`` ("" = the default). Raises PlanError naming the methods there are."""
        name = name or self.default_method
        if name not in self.methods:
            raise PlanError(
                f"{self.grpc_service} has no unary method {name[:200]!r} the load generator can call; "
                f"use one of {', '.join(self.methods)}"
            )
        return self.methods[name]

    def check_payload(self, payload: dict[str, float], method: str = "") -> None:
        """Raises PlanError for a payload field the method's request does not have."""
        desc = self.method(method).request_class.DESCRIPTOR
        fields = [f.name for f in desc.fields]
        unknown = sorted(set(payload) - set(fields))
        if unknown:
            raise PlanError(
                f"payload field(s) {', '.join(unknown)[:200]} unknown for {desc.full_name}; "
                f"it takes {', '.join(fields)}"
            )


def application_service(grpc_services: Sequence[str]) -> str | None:
    """The first service an instance serves that is not health or reflection, or None."""
    return next((s for s in grpc_services if s not in INFRASTRUCTURE), None)


def target_from_files(grpc_service: str, files: Sequence[bytes]) -> Target:
    """A Target from serialized FileDescriptorProtos (the file defining the service and its imports)."""
    protos = [descriptor_pb2.FileDescriptorProto.FromString(raw) for raw in files]
    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()
    pending = {p.name: p for p in protos}
    # Add in dependency order: a file can only be added once its imports are in the pool.
    while pending:
        ready = [p for p in pending.values() if all(d in added or d not in pending for d in p.dependency)]
        if not ready:
            raise PlanError(f"the descriptors of {grpc_service} import each other in a cycle")
        for p in ready:
            pool.Add(p)
            added.add(p.name)
            del pending[p.name]
    try:
        service = pool.FindServiceByName(grpc_service)
    except KeyError:
        raise PlanError(f"the instance does not describe {grpc_service} through reflection") from None
    methods = {
        m.name: TargetMethod(
            f"/{grpc_service}/{m.name}",
            message_factory.GetMessageClass(m.input_type),
            message_factory.GetMessageClass(m.output_type),
        )
        for m in service.methods
        if not m.client_streaming and not m.server_streaming
    }
    if not methods:
        raise PlanError(f"{grpc_service} has no unary method the load generator can call")
    return Target(grpc_service, methods)


async def reflect_target(address: str, grpc_services: Sequence[str], metadata: Sequence[tuple[str, str]] = ()) -> Target:
    """Ask the instance at ``address`` through server reflection what its application service is.

    Raises:
        PlanError: the instance serves nothing but health and reflection, or describes no unary method.
        TargetUnreachable: the reflection call failed or timed out.
    """
    service = application_service(grpc_services)
    if service is None:
        raise PlanError(f"the instance at {address} serves only {', '.join(grpc_services)}: nothing to load")
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=service)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        try:
            call = stub.ServerReflectionInfo(iter([request]), timeout=REFLECTION_TIMEOUT_S, metadata=tuple(metadata))
            reply = await call.read()
            call.cancel()
        except grpc.aio.AioRpcError as exc:
            raise TargetUnreachable(
                f"server reflection at {address} failed ({exc.code().name}: {(exc.details() or '')[:200]})"
            ) from None
    if reply is grpc.aio.EOF or not reply.HasField("file_descriptor_response"):
        raise TargetUnreachable(f"server reflection at {address} did not describe {service}")
    return target_from_files(service, reply.file_descriptor_response.file_descriptor_proto)
