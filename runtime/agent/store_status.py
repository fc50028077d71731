"""UNAVAILABLE when a service's store cannot answer: one interceptor instead of a try in every RPC.

The broker, config and state services may keep their data in etcd (runtime/client/etcd.py). When
the cluster has lost its quorum, any store call raises StoreUnavailable, whose message names the
members that are down. This interceptor turns that into gRPC UNAVAILABLE with the same message,
for unary calls and streams alike, so a caller reads "etcd store unavailable: 2 of 3 members are
down (etcd-2 at ..., etcd-3 at ...)" instead of UNKNOWN and a traceback. Every other exception
passes through untouched (the servicers map their own). Only methods of the lab's own services
(``/runtime.v1.*``, all written as plain coroutines or async generators) are wrapped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from runtime.client.store_choice import StoreUnavailable

WRAPPED_PREFIX = "/runtime.v1."


class StoreStatusInterceptor(grpc.aio.ServerInterceptor):
    """Server interceptor: StoreUnavailable -> UNAVAILABLE with its message."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        # Only the lab's own services: grpc.health.v1's Watch writes with context.write (no
        # generator to wrap), and health and reflection never touch a store.
        if handler is None or not handler_call_details.method.startswith(WRAPPED_PREFIX):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _stream(handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _stream(handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _unary(inner: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await inner(request, context)
        except StoreUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    return call


def _stream(inner: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for item in inner(request, context):
                yield item
        except StoreUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))

    return call
