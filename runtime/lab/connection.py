"""What every part of the Lab shares: channels to the lab's services, and one error mapping.

The parts (``lab.health``, ``lab.logs``, ``lab.load``, ``lab.chaos``, ``lab.config``,
``lab.state``) each get a :class:`Connection`, not the whole ``Lab``: they can reach services,
nothing else. A test or a script builds one over a single channel with
:meth:`Connection.single`, so every part also works without a running lab.

A failed gRPC call becomes a :mod:`runtime.errors` exception here, by its status code only:

=================  =====================================================================
status code        raised
=================  =====================================================================
NOT_FOUND          ``ServiceNotFound`` (or ``ClientError`` where the thing missing is a key
                   or a lock, not a service: the part says so with ``not_found=None``)
UNAVAILABLE        ``ServiceUnavailable`` ("the chaos service does not answer ...")
anything else      ``ClientError`` with ``code`` = the status name (``INVALID_ARGUMENT``, ...)
=================  =====================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf.descriptor import FieldDescriptor

from runtime.errors import ClientError, LabError, ServiceNotFound, ServiceUnavailable, UsageError, quote

RPC_TIMEOUT_S = 5.0
M = TypeVar("M")


@dataclass(frozen=True)
class Connection:
    """Channels to the lab's services (found through the broker), for one part of the Lab.

    Args:
        channel: ``channel("runtime.v1.HealthService")`` -> a channel to its current instances.
        broker_address: returns ``127.0.0.1:PORT`` of the broker (asked lazily: it may restart).
        lab_dir: the lab directory (jobs and worker processes are told where it is).

    Example:
        >>> conn = Connection.single(grpc.insecure_channel("127.0.0.1:50051"))   # doctest: +SKIP
        >>> Health(conn)()                                                     # doctest: +SKIP
    """

    channel: Callable[[str], Any]
    broker_address: Callable[[], str]
    lab_dir: Path

    @classmethod
    def single(cls, channel: Any, broker_address: str = "", lab_dir: Path | None = None) -> Connection:
        """Every service on one channel: for tests and scripts that talk to one service directly."""
        return cls(
            channel=lambda _service: channel,
            broker_address=lambda: broker_address,
            lab_dir=lab_dir or Path("."),
        )


def rpc_error(
    err: grpc.RpcError, service: str, what: str, *, not_found: type[LabError] | None = ServiceNotFound
) -> LabError:
    """The ``LabError`` for a failed call, chosen by its status code (see the module's table).

    Args:
        err: the failed call.
        service: who was called, as a learner would say it ("health service", "load generator").
        what: what the call was for ("reading health states"); starts the message ("": the
            service's message says it all, as the supervisor's do).
        not_found: what NOT_FOUND means here; None: the call's own subject is missing, so a
            ``ClientError`` with code ``NOT_FOUND`` (e.g. a config key that is not set).
    """
    code = err.code()  # type: ignore[attr-defined]
    details = err.details() or str(err)  # type: ignore[attr-defined]
    prefix = f"{what}: " if what else ""
    if code == grpc.StatusCode.NOT_FOUND and not_found is not None:
        return not_found(prefix + details)
    if code == grpc.StatusCode.UNAVAILABLE:
        return ServiceUnavailable(
            f"{prefix}the {service} does not answer ({details}); is it running? see lab.status()"
        )
    return ClientError(prefix + details, code.name)


def call(
    method: Callable[..., M],
    request: Any,
    service: str,
    what: str,
    *,
    timeout_s: float = RPC_TIMEOUT_S,
    not_found: type[LabError] | None = ServiceNotFound,
) -> M:
    """``method(request)`` with a deadline; a failure raises :func:`rpc_error`'s exception."""
    try:
        return method(request, timeout=timeout_s)
    except grpc.RpcError as err:
        raise rpc_error(err, service, what, not_found=not_found) from err


def message(cls: Callable[..., M], what: str, **fields: Any) -> M:
    """Build a request from a learner's arguments; a value of the wrong type is a ``UsageError``.

    Protobuf refuses ``requests_per_second="100"`` with a bare TypeError; the learner gets a
    LabError that names the call, the field, the value and what the field takes, before
    anything is sent.

    Example:
        >>> from runtime.v1 import load_pb2
        >>> message(load_pb2.LoadConfig, "load on 'calculator'", requests_per_second="100")
        Traceback (most recent call last):
        runtime.errors.UsageError: load on 'calculator': requests_per_second='100' is a str; it takes a whole number
    """
    try:
        return cls(**fields)
    except (TypeError, ValueError) as err:
        for name, value in fields.items():
            try:
                cls(**{name: value})
            except (TypeError, ValueError):
                takes = _takes(cls, name)
                raise UsageError(
                    f"{what}: {name}={quote(value)} is a {type(value).__name__}; it takes {takes}"
                ) from None
        raise UsageError(f"{what}: {quote(str(err))[1:-1]}") from None


_TAKES = {
    FieldDescriptor.CPPTYPE_INT32: "a whole number",
    FieldDescriptor.CPPTYPE_INT64: "a whole number",
    FieldDescriptor.CPPTYPE_UINT32: "a whole number >= 0",
    FieldDescriptor.CPPTYPE_UINT64: "a whole number >= 0",
    FieldDescriptor.CPPTYPE_DOUBLE: "a number",
    FieldDescriptor.CPPTYPE_FLOAT: "a number",
    FieldDescriptor.CPPTYPE_BOOL: "True or False",
    FieldDescriptor.CPPTYPE_STRING: "text",
    FieldDescriptor.CPPTYPE_ENUM: "one of its names",
    FieldDescriptor.CPPTYPE_MESSAGE: "a message",
}


def _takes(cls: Any, name: str) -> str:
    field = cls.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        return "no such field"
    takes = _TAKES.get(field.cpp_type, "another type")
    return f"a list of {takes}" if field.is_repeated else takes
