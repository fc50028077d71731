"""Correlation IDs: one request id followed through client, broker and server logs.

- ``CORRELATION_HEADER``: gRPC metadata key ``x-correlation-id``.
- ``correlation_id``: a ContextVar holding the current id ("" when none).
- ``current()`` / ``new_id()`` / ``use(cid)`` (context manager setting the contextvar).
- ``server_interceptor()``: grpc.aio server interceptor that puts the incoming id in the contextvar.
- ``client_interceptors()``: sync-channel interceptors that send the current id (or a new ``req-...``).
- ``aio_client_interceptors()``: the same for grpc.aio channels.

Example:
    >>> with use("req-123"):
    ...     current()
    'req-123'
"""

from __future__ import annotations

import contextlib
import inspect
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from typing import Any

import grpc

from runtime.client.call_metadata import SyncMetadata, aio_metadata_interceptors

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


def from_metadata(metadata: Any) -> str:
    """The correlation id in gRPC invocation metadata, or ""."""
    for key, value in metadata or ():
        if key == CORRELATION_HEADER:
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


# -- server side ---------------------------------------------------------------------------


def _wrap_unary(behavior: Callable[..., Any]) -> Callable[..., Any]:
    async def handler(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        with use(from_metadata(context.invocation_metadata())):
            result = behavior(request_or_iterator, context)
            return await result if inspect.isawaitable(result) else result

    return handler


def _wrap_streaming(behavior: Callable[..., Any]) -> Callable[..., Any]:
    if not inspect.isasyncgenfunction(behavior):
        return _wrap_unary(behavior)  # handler writes with context.write() and returns

    async def handler(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        token = correlation_id.set(from_metadata(context.invocation_metadata()))
        try:
            async for item in behavior(request_or_iterator, context):
                yield item
        finally:
            with contextlib.suppress(ValueError):  # reset from another context after cancellation
                correlation_id.reset(token)

    return handler


class _ServerInterceptor(grpc.aio.ServerInterceptor):
    """Puts the caller's ``x-correlation-id`` in the contextvar for the handler's whole run."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        io = (handler.request_deserializer, handler.response_serializer)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(_wrap_unary(handler.unary_unary), *io)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(_wrap_streaming(handler.unary_stream), *io)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(_wrap_unary(handler.stream_unary), *io)
        if handler.stream_stream:
            return grpc.stream_stream_rpc_method_handler(_wrap_streaming(handler.stream_stream), *io)
        return handler


def server_interceptor() -> grpc.aio.ServerInterceptor:
    """Interceptor for grpc.aio servers: the handler sees the caller's id via ``current()``."""
    return _ServerInterceptor()


# -- client side ---------------------------------------------------------------------------


def _outgoing(metadata: Any) -> list[tuple[str, str]] | None:
    """Metadata with the id added, or None when the caller already set one."""
    pairs = list(metadata or ())
    if any(k == CORRELATION_HEADER for k, _ in pairs):
        return None
    return [*pairs, (CORRELATION_HEADER, current() or new_id())]


def client_interceptors() -> list[Any]:
    """Interceptors for sync channels: ``grpc.intercept_channel(ch, *client_interceptors())``."""
    return [SyncMetadata(_outgoing)]


def aio_client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """Interceptors for grpc.aio channels: ``grpc.aio.insecure_channel(a, interceptors=...)``."""
    return aio_metadata_interceptors(_outgoing)
