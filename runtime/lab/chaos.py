"""Chaos from the notebook: the ``lab.inject`` / ``lab.faults`` / ``lab.clear`` methods.

The functions take a (sync) gRPC channel to the chaos service, so they work with or without a
``Lab``; the ``ChaosViews`` mixin gives ``Lab`` thin wrappers over them.

    fid = lab.inject("calculator", "delay", duration_s=30, delay_ms=500)
    lab.faults()                       # fault_id, type, service, instance, params, created, expires
    lab.clear(fid)                     # or lab.clear() for all of them
    lab.inject("calculator", "crash", instance="calculator-1")   # SIGKILL through the supervisor
"""

from __future__ import annotations

from typing import Any

import grpc
import pandas as pd

from runtime.errors import ClientError, LabError, ServiceNotFound
from runtime.identity import CHAOS_GRPC_SERVICE
from runtime.v1 import chaos_pb2, chaos_pb2_grpc, common_pb2

RPC_TIMEOUT_S = 5.0
# Which keyword each kind takes (the FaultParams field names).
PARAMS = {
    "DELAY": "delay_ms",
    "PACKET_LOSS": "packet_loss_pct",
    "CPU_HOG": "cpu_threads",
    "MEMORY_LEAK": "memory_mb",
    "ERROR_INJECT": "error_rate",
}
FAULT_COLUMNS = ["fault_id", "type", "service", "instance", "params", "created", "expires"]


def fault_type(kind: str | int) -> int:
    """``"delay"``, ``"DELAY"`` or ``1`` -> ``chaos_pb2.DELAY``; ValueError lists the kinds."""
    if isinstance(kind, int) and kind in chaos_pb2.FaultType.values():
        return kind
    try:
        return chaos_pb2.FaultType.Value(str(kind).strip().upper().replace("-", "_").replace(" ", "_"))
    except ValueError:
        kinds = ", ".join(name.lower() for name, _ in chaos_pb2.FaultType.items())
        raise ValueError(f"unknown fault kind {kind!r}; use one of: {kinds}") from None


def fault_config(
    service: str, kind: str | int, duration_s: int = 0, instance: str | int | None = None, **params: Any
) -> chaos_pb2.FaultConfig:
    """Build the FaultConfig for ``inject``; TypeError names the keyword the kind takes."""
    ftype = fault_type(kind)
    name = chaos_pb2.FaultType.Name(ftype)
    allowed = {PARAMS[name]} if name in PARAMS else set()
    extra = set(params) - allowed
    if extra:
        takes = f"takes {PARAMS[name]}=..." if name in PARAMS else "takes no parameters"
        raise TypeError(f"{name} {takes}; got {', '.join(sorted(extra))}")
    if isinstance(instance, int):
        instance = f"{service}-{instance}"
    return chaos_pb2.FaultConfig(
        target_service=service,
        type=ftype,  # type: ignore[arg-type]
        duration_seconds=int(duration_s),
        params=chaos_pb2.FaultParams(**params),
        target_instance=instance or "",
    )


def _rpc_error(err: grpc.RpcError, what: str) -> LabError:
    code = err.code()  # type: ignore[attr-defined]
    details = err.details() or str(err)  # type: ignore[attr-defined]
    if code == grpc.StatusCode.NOT_FOUND:
        return ServiceNotFound(f"{what}: {details}")
    if code == grpc.StatusCode.UNAVAILABLE:
        return LabError(
            f"{what}: the chaos service does not answer ({details}); is it running? see lab.status()"
        )
    return ClientError(f"{what}: {details}", code.name)


def inject_fault(channel: Any, config: chaos_pb2.FaultConfig) -> chaos_pb2.FaultStatus:
    """InjectFault; raises ClientError (INVALID_ARGUMENT, ...) or ServiceNotFound."""
    stub = chaos_pb2_grpc.ChaosServiceStub(channel)
    try:
        return stub.InjectFault(config, timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as err:
        raise _rpc_error(err, f"injecting a fault into {config.target_service!r}") from err


def faults_frame(channel: Any) -> pd.DataFrame:
    """The active faults, oldest first, one row each."""
    stub = chaos_pb2_grpc.ChaosServiceStub(channel)
    try:
        reply = stub.ListActiveFaults(common_pb2.Empty(), timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as err:
        raise _rpc_error(err, "listing faults") from err
    rows = []
    for f in reply.faults:
        name = chaos_pb2.FaultType.Name(f.config.type)
        param = PARAMS.get(name, "")
        rows.append(
            {
                "fault_id": f.fault_id,
                "type": name,
                "service": f.config.target_service,
                "instance": f.config.target_instance or "(all)",
                "params": f"{param}={getattr(f.config.params, param):g}" if param else "",
                "created": pd.Timestamp(f.created_at, unit="ms", tz="UTC"),
                "expires": pd.Timestamp(f.expires_at, unit="ms", tz="UTC") if f.expires_at else None,
            }
        )
    return pd.DataFrame(rows, columns=FAULT_COLUMNS)


def clear_faults(channel: Any, fault_id: str | None = None) -> int:
    """Clear one fault (or all); returns how many were cleared."""
    stub = chaos_pb2_grpc.ChaosServiceStub(channel)
    try:
        if fault_id:
            return int(stub.ClearFault(chaos_pb2.FaultId(fault_id=fault_id), timeout=RPC_TIMEOUT_S).cleared)
        return stub.ClearAllFaults(common_pb2.Empty(), timeout=RPC_TIMEOUT_S).cleared
    except grpc.RpcError as err:
        raise _rpc_error(err, "clearing faults") from err


class ChaosViews:
    """The chaos part of ``Lab``: relies on ``self._channel(grpc_service)`` from the core Lab."""

    def _channel(self, grpc_service: str) -> Any:  # provided by Lab
        raise NotImplementedError

    def inject(
        self,
        service: str,
        kind: str | int,
        duration_s: int = 0,
        instance: str | int | None = None,
        **params: Any,
    ) -> str:
        """Inject a fault into ``service`` (every instance, or ``instance``); returns its id.

        Args:
            service: the lab service, e.g. ``"calculator"``.
            kind: ``crash``, ``delay``, ``packet_loss``, ``cpu_hog``, ``memory_leak``, ``error_inject``.
            duration_s: how long it lasts (0: until cleared). Ignored by ``crash``.
            instance: ``"calculator-1"`` or ``1``; default every instance.
            **params: the one the kind takes: ``delay_ms``, ``packet_loss_pct`` (0-100),
                ``cpu_threads``, ``memory_mb``, ``error_rate`` (0-1).

        Raises:
            ServiceNotFound: no such service or instance in the lab.
            ClientError: the chaos service refused (code ``INVALID_ARGUMENT``, ...), with why.

        Example:
            >>> fid = lab.inject("calculator", "delay", duration_s=30, delay_ms=500)   # doctest: +SKIP
        """
        config = fault_config(service, kind, duration_s, instance, **params)
        return inject_fault(self._channel(CHAOS_GRPC_SERVICE), config).fault_id

    def faults(self) -> pd.DataFrame:
        """The active faults: fault_id, type, service, instance, params, created, expires."""
        return faults_frame(self._channel(CHAOS_GRPC_SERVICE))

    def clear(self, fault_id: str | None = None) -> int:
        """Clear one fault, or every fault when ``fault_id`` is None; returns how many went."""
        return clear_faults(self._channel(CHAOS_GRPC_SERVICE), fault_id)
