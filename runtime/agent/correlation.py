"""Correlation IDs: one request id followed through client, broker and server logs.

INTERFACE STUB (owned by the logger issue, #4): the names below are the contract the agent and
the discovery helper call; the logger work fills in the bodies.

- ``CORRELATION_HEADER``: gRPC metadata key ``x-correlation-id``.
- ``correlation_id``: a ContextVar holding the current id ("" when none).
- ``current()`` / ``new_id()`` / ``use(cid)`` (context manager setting the contextvar).
- ``server_interceptor()``: grpc.aio server interceptor that puts the incoming id in the contextvar.
- ``client_interceptors()``: sync-channel interceptors that send the current id (or a new ``req-...``).
- ``aio_client_interceptors()``: the same for grpc.aio channels.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from contextvars import ContextVar

import grpc

CORRELATION_HEADER = "x-correlation-id"
correlation_id: ContextVar[str] = ContextVar("correlation_id", default="")


def current() -> str:
    """The correlation id of the request being handled, or ""."""
    return correlation_id.get()


def new_id() -> str:
    """A fresh id such as ``req-3f9a1c2b``."""
    return f"req-{secrets.token_hex(4)}"


@contextlib.contextmanager
def use(cid: str) -> Iterator[str]:
    """Make ``cid`` the current correlation id inside the block."""
    token = correlation_id.set(cid)
    try:
        yield cid
    finally:
        correlation_id.reset(token)


def server_interceptor() -> grpc.aio.ServerInterceptor | None:
    """Interceptor for grpc.aio servers (stub: none yet)."""
    return None


def client_interceptors() -> list[object]:
    """Interceptors for sync channels (stub: none yet)."""
    return []


def aio_client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Interceptors for grpc.aio channels (stub: none yet)."""
    return []
