"""Serve a lab service's gRPC servicer over the Connect protocol too: the same handlers, no proxy.

The plan's one firm technical decision is Connect: a service speaks gRPC and HTTP/1.1 at once,
so ``curl`` or a browser can call it. connect-python (the Connect project's Python
implementation) gives an ASGI application per service; its generated code would wire it to a
second, Connect-only implementation of each service. Here the endpoints are built from the
service's protobuf descriptor instead, and each one calls the very ``grpc.aio`` servicer method the
gRPC server calls, with a small stand-in for the gRPC context. So one handler answers both
protocols, with the same validation, the same messages and the same status codes::

    app = connect_app(servicer, health_pb2.DESCRIPTOR.services_by_name["HealthService"])
    # POST /runtime.v1.HealthService/CheckHealth  {"serviceName": "calculator"}

The servicer sees ``context.abort(code, details)`` (raised as a ConnectError with the matching
Connect code), ``context.invocation_metadata()`` (the HTTP request headers, lower-case) and
``context.peer()``; initial and trailing metadata become response headers and trailers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn

import grpc
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from connectrpc.method import IdempotencyLevel, MethodInfo
from connectrpc.request import RequestContext
from connectrpc.server import ConnectASGIApplication, Endpoint
from google.protobuf import descriptor, json_format, message_factory
from google.protobuf.message import DecodeError

MAX_REQUEST_BYTES = 4 * 1024 * 1024  # the same ceiling as gRPC's default receive limit

# Requests a servicer may see from either protocol: the headers of an HTTP call, lower-case.
Metadata = tuple[tuple[str, str], ...]


def connect_code(code: grpc.StatusCode) -> Code:
    """The Connect code for a gRPC status (they are the same set with the same names)."""
    return Code.CANCELED if code == grpc.StatusCode.CANCELLED else Code[code.name]


class ConnectContext:
    """What a ``grpc.aio`` servicer uses of its context, answered from a Connect request.

    Only the calls the lab's servicers make are here; anything else is an AttributeError at
    once rather than a silently different behaviour.
    """

    def __init__(self, ctx: RequestContext[Any, Any]) -> None:
        self._ctx = ctx

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> NoReturn:
        """End the call with ``code`` and ``details``, as ``grpc.aio`` does."""
        raise ConnectError(connect_code(code), details)

    def invocation_metadata(self) -> Metadata:
        """The request's HTTP headers as gRPC metadata pairs (keys lower-case)."""
        headers = self._ctx.request_headers()
        return tuple((k.lower(), v) for k, v in headers.allitems())

    def peer(self) -> str:
        """``ipv4:127.0.0.1:PORT`` of the caller, in gRPC's spelling."""
        return f"ipv4:{self._ctx.client_address() or 'unknown'}"

    async def send_initial_metadata(self, metadata: Iterable[tuple[str, str]]) -> None:
        """Initial metadata goes out as response headers."""
        headers = self._ctx.response_headers()
        for key, value in metadata:
            headers[key] = value

    def set_trailing_metadata(self, metadata: Iterable[tuple[str, str]]) -> None:
        """Trailing metadata goes out as response trailers."""
        trailers = self._ctx.response_trailers()
        for key, value in metadata:
            trailers[key] = value

    def time_remaining(self) -> float | None:
        """Seconds left before the caller's deadline (``connect-timeout-ms``), None without one."""
        ms = self._ctx.timeout_ms()
        return None if ms is None else ms / 1000.0


def _method_info(method: descriptor.MethodDescriptor) -> MethodInfo[Any, Any]:
    return MethodInfo(
        name=method.name,
        service_name=method.containing_service.full_name,
        input=message_factory.GetMessageClass(method.input_type),
        output=message_factory.GetMessageClass(method.output_type),
        idempotency_level=IdempotencyLevel.UNKNOWN,
    )


def _unary(handler: Callable[..., Any]) -> Callable[..., Any]:
    async def call(request: Any, ctx: RequestContext[Any, Any]) -> Any:
        return await handler(request, ConnectContext(ctx))

    return call


def _server_stream(handler: Callable[..., Any]) -> Callable[..., Any]:
    async def call(request: Any, ctx: RequestContext[Any, Any]) -> AsyncIterator[Any]:
        async for reply in handler(request, ConnectContext(ctx)):
            yield reply

    return call


def endpoints(servicer: Any, service: descriptor.ServiceDescriptor) -> dict[str, Any]:
    """``/pkg.Service/Method`` -> Endpoint for every unary and server-streaming method of ``service``.

    Client- and bidi-streaming methods are left out: HTTP/1.1 cannot carry them, and browsers
    cannot send a streaming request body anyway (they stay gRPC-only).
    """
    found: dict[str, Any] = {}  # path -> EndpointUnary | EndpointServerStream
    for method in service.methods:
        if method.client_streaming:
            continue
        info = _method_info(method)
        handler = getattr(servicer, method.name)
        path = f"/{service.full_name}/{method.name}"
        if method.server_streaming:
            found[path] = Endpoint.server_stream(method=info, function=_server_stream(handler))
        else:
            found[path] = Endpoint.unary(method=info, function=_unary(handler))
    return found


class ServicerApp(ConnectASGIApplication[Any]):
    """The ASGI application serving one gRPC servicer over Connect."""

    def __init__(
        self, servicer: Any, service: descriptor.ServiceDescriptor, interceptors: Sequence[Any] = ()
    ) -> None:
        self._path = f"/{service.full_name}"
        super().__init__(
            service=servicer,
            endpoints=lambda s: endpoints(s, service),
            interceptors=interceptors,
            read_max_bytes=MAX_REQUEST_BYTES,
        )

    @property
    def path(self) -> str:
        return self._path

    async def _handle_error(self, exc: Exception, ctx: RequestContext[Any, Any] | None, send: Any) -> None:
        # connect-python 0.9 answers a request body that does not decode with "unknown" (HTTP
        # 500); the Connect spec and gRPC say INVALID_ARGUMENT, and that is what a learner who
        # typed a wrong field name should read. (Pinned version; tests/test_connect_bridge.py.)
        if isinstance(exc, json_format.ParseError | DecodeError):
            what = ctx.method().input.DESCRIPTOR.full_name if ctx is not None else "request"
            exc = ConnectError(Code.INVALID_ARGUMENT, f"the body is not a valid {what}: {str(exc)[:200]}")
        await super()._handle_error(exc, ctx, send)  # type: ignore[misc]


def connect_app(
    servicer: Any, service: descriptor.ServiceDescriptor, interceptors: Sequence[Any] = ()
) -> ServicerApp:
    """One servicer's Connect application (see the module docstring)."""
    return ServicerApp(servicer, service, interceptors)


def mount(apps: Mapping[str, Any], fallback: Any = None) -> Callable[..., Any]:
    """One ASGI app routing ``/pkg.Service/...`` to the app of that service, anything else to
    ``fallback`` (the web page's files), or 404."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            # Each servicer already exists; answer the server's lifespan messages ourselves.
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        prefix = "/" + scope.get("path", "").lstrip("/").split("/", 1)[0]
        target = apps.get(prefix, fallback)
        if target is None:
            body = f"no service at {scope.get('path', '')[:200]}; this port serves {', '.join(apps)}".encode()
            await send({"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": body})
            return
        await target(scope, receive, send)

    return app
