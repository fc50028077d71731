"""Client interceptors that add metadata to every call: the one shape behind the token and the id.

A lab client adds two headers to every call it makes: the lab's token (``runtime.client.auth``)
and the request's correlation id (``runtime.client.correlation``). Both are "look at the call's
metadata, maybe add a pair"; this module is the grpc plumbing for that, once, for the four call
types of sync and grpc.aio channels. The decision is a plain function:

    add(metadata) -> the new metadata (a list of pairs), or None to leave the call unchanged

Example:
    >>> def add(md):
    ...     return None if any(k == "x-a" for k, _ in md or ()) else [*(md or ()), ("x-a", "1")]
    >>> interceptor = SyncMetadata(add)             # grpc.intercept_channel(ch, interceptor)
    >>> len(aio_metadata_interceptors(add))          # grpc.aio.insecure_channel(a, interceptors=...)
    4
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import grpc

AddMetadata = Callable[[Any], "list[tuple[str, Any]] | None"]


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class _CallDetails(_Details, grpc.ClientCallDetails):
    pass


class SyncMetadata(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Calls ``add`` on every call's metadata of a sync channel (all four call types)."""

    def __init__(self, add: AddMetadata) -> None:
        self._add = add

    def _details(self, d: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        md = self._add(d.metadata)
        if md is None:
            return d
        return _CallDetails(
            d.method, d.timeout, md, d.credentials,
            getattr(d, "wait_for_ready", None), getattr(d, "compression", None),
        )  # fmt: skip

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._details(client_call_details), request_iterator)


class _AioBase:
    def __init__(self, add: AddMetadata) -> None:
        self._add = add

    def _details(self, d: Any) -> Any:
        md = self._add(d.metadata)
        if md is None:
            return d
        return d._replace(metadata=grpc.aio.Metadata(*md))


class _AioUnaryUnary(_AioBase, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


class _AioUnaryStream(_AioBase, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        return await continuation(self._details(client_call_details), request)


class _AioStreamUnary(_AioBase, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


class _AioStreamStream(_AioBase, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


def aio_metadata_interceptors(add: AddMetadata) -> list[grpc.aio.ClientInterceptor]:
    """grpc.aio interceptors (one per call type, as grpc.aio wants them) calling ``add``."""
    return [_AioUnaryUnary(add), _AioUnaryStream(add), _AioStreamUnary(add), _AioStreamStream(add)]
