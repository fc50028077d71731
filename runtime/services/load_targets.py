"""What the load generator can call: the gRPC services it knows, their methods and requests.

    target = target_for(["calculator.v1.CalculatorService"])
    call = target.method("Add")           # raises PlanError for an unknown method
    call.request({"a": 2, "b": 3})        # AddRequest(a=2, b=3)

A target is picked by the gRPC services the broker lists for the looked-up instances.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from calculator.v1 import calculator_pb2
from runtime.services.load_schedule import PlanError

DEFAULT_OPERANDS = {"a": 2.0, "b": 3.0}


@dataclass(frozen=True)
class TargetMethod:
    """One unary method: its full gRPC path, how to build a request, how to read a reply."""

    path: str
    build: Callable[..., Any]
    response: Any

    def request(self, payload: dict[str, float]) -> Any:
        """The request message for ``payload`` (defaults for missing fields)."""
        return self.build(**{**DEFAULT_OPERANDS, **payload})


@dataclass(frozen=True)
class Target:
    """A gRPC service the load generator knows how to call."""

    grpc_service: str
    methods: dict[str, TargetMethod]
    default_method: str
    payload_fields: tuple[str, ...]

    def method(self, name: str) -> TargetMethod:
        """The method ``name`` ("" = the default). Raises PlanError naming the methods there are."""
        name = name or self.default_method
        if name not in self.methods:
            raise PlanError(
                f"{self.grpc_service} has no method {name!r} the load generator can call; "
                f"use one of {', '.join(self.methods)}"
            )
        return self.methods[name]

    def check_payload(self, payload: dict[str, float]) -> None:
        """Raises PlanError for a payload field the requests do not have."""
        unknown = sorted(set(payload) - set(self.payload_fields))
        if unknown:
            raise PlanError(
                f"payload field(s) {', '.join(unknown)} unknown for {self.grpc_service}; "
                f"it takes {', '.join(self.payload_fields)}"
            )


def _calculator() -> Target:
    service = "calculator.v1.CalculatorService"
    methods = {}
    for op in ("Add", "Subtract", "Multiply", "Divide"):
        req = getattr(calculator_pb2, f"{op}Request")
        resp = getattr(calculator_pb2, f"{op}Response")
        methods[op] = TargetMethod(f"/{service}/{op}", req, resp)
    return Target(service, methods, "Add", ("a", "b"))


TARGETS = {t.grpc_service: t for t in (_calculator(),)}


def target_for(grpc_services: Sequence[str]) -> Target | None:
    """The known target among ``grpc_services`` (what an instance serves), or None."""
    for name in grpc_services:
        if name in TARGETS:
            return TARGETS[name]
    return None
