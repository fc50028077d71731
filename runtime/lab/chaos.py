"""Chaos from the notebook: the ``lab.chaos`` part (inject, list, clear faults).

The functions take a (sync) gRPC channel to the chaos service, so they work with or without a
``Lab``; :class:`Chaos` is the part ``Lab`` holds as ``lab.chaos``. ``lab.inject(...)`` stays as
a thin alias of ``lab.chaos.inject(...)``: "inject a fault" is the one verb of a chaos chapter.

    fid = lab.chaos.inject("calculator", "delay", duration_s=30, delay_ms=500)
    lab.chaos.faults()                 # fault_id, type, service, instance, params, created, expires
    lab.chaos.clear(fid)               # or lab.chaos.clear() for all of them
    lab.chaos.inject("calculator", "crash", instance="calculator-1")   # SIGKILL through the supervisor
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from runtime.errors import UsageError, quote
from runtime.identity import CHAOS_GRPC_SERVICE
from runtime.lab.connection import Connection, call, message
from runtime.lab.names import instance_id
from runtime.v1 import chaos_pb2, chaos_pb2_grpc, common_pb2

SERVICE = "chaos service"  # how error messages name it
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
    """``"delay"``, ``"DELAY"`` or ``1`` -> ``chaos_pb2.DELAY``; a UsageError lists the kinds."""
    if isinstance(kind, int) and kind in chaos_pb2.FaultType.values():
        return kind
    try:
        return chaos_pb2.FaultType.Value(str(kind).strip().upper().replace("-", "_").replace(" ", "_"))
    except ValueError:
        kinds = ", ".join(name.lower() for name, _ in chaos_pb2.FaultType.items())
        raise UsageError(f"unknown fault kind {quote(kind)}; use one of: {kinds}") from None


def fault_config(
    service: str, kind: str | int, duration_s: int = 0, instance: str | int | None = None, **params: Any
) -> chaos_pb2.FaultConfig:
    """Build the FaultConfig for ``inject``; a UsageError names the keyword the kind takes."""
    ftype = fault_type(kind)
    name = chaos_pb2.FaultType.Name(ftype)
    allowed = {PARAMS[name]} if name in PARAMS else set()
    extra = set(params) - allowed
    if extra:
        takes = f"takes {PARAMS[name]}=..." if name in PARAMS else "takes no parameters"
        raise UsageError(f"{name} {takes}; got {', '.join(sorted(extra))}")
    what = f"a {name} fault for {service!r}"
    return message(
        chaos_pb2.FaultConfig,
        what,
        target_service=service,
        type=ftype,
        duration_seconds=duration_s,
        params=message(chaos_pb2.FaultParams, what, **params),
        target_instance=instance_id(service, instance),
    )


def inject_fault(channel: Any, config: chaos_pb2.FaultConfig) -> chaos_pb2.FaultStatus:
    """InjectFault; raises ClientError (INVALID_ARGUMENT, ...) or ServiceNotFound."""
    stub = chaos_pb2_grpc.ChaosServiceStub(channel)
    return call(stub.InjectFault, config, SERVICE, f"injecting a fault into {config.target_service!r}")


def faults_frame(channel: Any) -> pd.DataFrame:
    """The active faults, oldest first, one row each."""
    stub = chaos_pb2_grpc.ChaosServiceStub(channel)
    reply = call(stub.ListActiveFaults, common_pb2.Empty(), SERVICE, "listing faults")
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
    if fault_id:
        request = message(chaos_pb2.FaultId, "clearing a fault", fault_id=fault_id)
        return int(call(stub.ClearFault, request, SERVICE, f"clearing fault {fault_id!r}").cleared)
    return int(call(stub.ClearAllFaults, common_pb2.Empty(), SERVICE, "clearing faults").cleared)


class Chaos:
    """The chaos part of ``Lab`` (``lab.chaos``): inject faults, list them, clear them.

    Example:
        >>> fid = lab.chaos.inject("calculator", "delay", duration_s=30, delay_ms=500)   # doctest: +SKIP
        >>> lab.chaos.clear(fid)                                                         # doctest: +SKIP
        1
    """

    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    def _channel(self) -> Any:
        return self._conn.channel(CHAOS_GRPC_SERVICE)

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
            UsageError: an unknown kind, a keyword the kind does not take, a value of the wrong type.
            ServiceNotFound: no such service or instance in the lab.
            ClientError: the chaos service refused (code ``INVALID_ARGUMENT``, ...), with why.

        Example:
            >>> fid = lab.chaos.inject("calculator", "delay", duration_s=30, delay_ms=500)   # doctest: +SKIP
        """
        config = fault_config(service, kind, duration_s, instance, **params)
        return inject_fault(self._channel(), config).fault_id

    def faults(self) -> pd.DataFrame:
        """The active faults: fault_id, type, service, instance, params, created, expires."""
        return faults_frame(self._channel())

    def clear(self, fault_id: str | None = None) -> int:
        """Clear one fault, or every fault when ``fault_id`` is None; returns how many went."""
        return clear_faults(self._channel(), fault_id)

    def __repr__(self) -> str:
        return "<lab.chaos: .inject(), .faults(), .clear()>"
