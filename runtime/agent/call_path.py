"""The per-call path of every agent: one server interceptor for the token, the correlation id,
the DEGRADED rule's timing and the chaos faults.

    path = CallPath.for_lab(lab_dir, rule=reporter.rule, faults=fault_agent.set)
    server = grpc.aio.server(interceptors=[path])

What it does to one call, in this order:

=================  ==========================================================================
token              every method but grpc.health.v1 and reflection needs the lab's token
                   (the rule is ``runtime.identity.token_refusal``; UNAUTHENTICATED names the
                   token file; the request is never parsed)
correlation id     the caller's ``x-correlation-id`` becomes ``correlation.current()`` for the
                   handler and every log line it writes
DEGRADED timing    unary calls of the instance's own services: latency from the moment the call
                   reached the interceptor to the handler's end; in flight while the handler runs
faults             unary calls but the chaos API's: ``FaultSet.apply`` when a fault is active
=================  ==========================================================================

Why one interceptor and not a chain of four: grpc.aio runs each interceptor as its own coroutine
step and each wrapper builds a new method handler per call. Here the metadata is read once, and the
wrapped handler of each method is built once and reused (``cache``), so a call allocates nothing
for the path but two context-variable values. Both are set in ``intercept_service``, which grpc.aio
runs in the call's own task, before the handler: the handler sees them without a wrapper.

A service that adds interceptors of its own behind this one (``Agent(interceptors=...)``) gets
no cache: theirs must see every call.
"""

from __future__ import annotations

import hmac
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import grpc

from runtime.agent.faults import UNTOUCHED_PREFIXES, FaultSet
from runtime.agent.health_reporter import UNTIMED_PREFIXES, DegradedRule
from runtime.client.auth import refusing_handler
from runtime.client.correlation import CORRELATION_HEADER, correlation_id
from runtime.identity import (
    AUTH_HEADER,
    AUTH_SCHEME,
    ENV_LAB_DIR,
    ENV_TOKEN,
    OPEN_METHOD_PREFIXES,
    token_refusal,
)

# When the current call reached the server (time.monotonic()); the DEGRADED latency counts from it.
_arrived: ContextVar[float] = ContextVar("lab_call_arrived", default=0.0)


class CallPath(grpc.aio.ServerInterceptor):
    """Token check, correlation id, DEGRADED timing and faults for every call (module docstring).

    Args:
        token: the lab's token ("" outside a lab: nothing is refused).
        lab_dir: named in the refusal message.
        rule: the DEGRADED rule fed with every unary call's latency (None: no timing).
        faults: the active faults to apply (None: none).
        cache: reuse each method's wrapped handler (only when no interceptor follows this one).

    Example:
        >>> path = CallPath(token="s3cret", rule=DegradedRule())
        >>> server = grpc.aio.server(interceptors=[path])  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        token: str = "",
        lab_dir: str = "",
        rule: DegradedRule | None = None,
        faults: FaultSet | None = None,
        cache: bool = True,
    ) -> None:
        self._token = token
        # Compared as bytes in constant time; the header as callers send it, exactly.
        self._expected = f"{AUTH_SCHEME} {token}".encode() if token else b""
        self._lab_dir = lab_dir
        self.rule = rule
        self.faults = faults
        self._cache: dict[str, grpc.RpcMethodHandler] | None = {} if cache else None

    @classmethod
    def for_lab(
        cls,
        lab_dir: str | None = None,
        *,
        rule: DegradedRule | None = None,
        faults: FaultSet | None = None,
        cache: bool = True,
    ) -> CallPath:
        """The path of a lab process: the token from ``$LAB_TOKEN``, the lab dir from ``$LAB_DIR``."""
        folder = os.environ.get(ENV_LAB_DIR, "") if lab_dir is None else lab_dir
        return cls(token=os.environ.get(ENV_TOKEN, ""), lab_dir=folder, rule=rule, faults=faults, cache=cache)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method or ""
        if method.startswith(OPEN_METHOD_PREFIXES):
            return await continuation(handler_call_details)  # health and reflection: as they are
        metadata = handler_call_details.invocation_metadata or ()
        presented: Any = None
        cid: Any = ""
        for key, value in metadata:
            if key == AUTH_HEADER:
                presented = value
            elif key == CORRELATION_HEADER:
                cid = value
        if self._token and not self._accepts(presented):
            refusal = token_refusal(method, metadata, self._token, self._lab_dir)
            if refusal is not None:
                handler = await continuation(handler_call_details)
                return None if handler is None else refusing_handler(handler, refusal)
        if cid:
            correlation_id.set(cid.decode() if isinstance(cid, bytes) else str(cid))
        _arrived.set(time.monotonic())
        cache = self._cache
        handler = cache.get(method) if cache is not None else None
        if handler is None:
            handler = await continuation(handler_call_details)
            if handler is None:
                return None  # unknown method: UNIMPLEMENTED, and nothing cached for it
            handler = self._wrap(method, handler)
            if cache is not None:
                cache[method] = handler
        return handler

    def _accepts(self, presented: Any) -> bool:
        # The common case in one constant-time compare; anything else (another case of the
        # scheme, spaces) goes to token_refusal, the rule every server shares.
        if presented is None:
            return False
        raw = presented if isinstance(presented, bytes) else str(presented).encode("utf-8", "replace")
        return hmac.compare_digest(raw, self._expected)

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The handler with timing and faults around it (streams and the platform's calls as they are)."""
        inner = handler.unary_unary
        rule = self.rule if not method.startswith(UNTIMED_PREFIXES) else None
        faults = self.faults if not method.startswith(UNTOUCHED_PREFIXES) else None
        if inner is None or (rule is None and faults is None):
            return handler
        is_async = inspect.iscoroutinefunction(inner)

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            if rule is not None:
                rule.started()
            try:
                if faults is not None and faults.faults:  # the common case costs one dict check
                    await faults.apply(context, method)
                if is_async:
                    return await inner(request, context)
                result = inner(request, context)
                return await result if inspect.isawaitable(result) else result
            finally:
                if rule is not None:
                    rule.finished(_arrived.get())

        return grpc.unary_unary_rpc_method_handler(
            call,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
