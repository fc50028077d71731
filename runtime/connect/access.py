"""Who may call a Connect port: the lab's token, and CORS only for the lab's own web page.

The same rule as over gRPC (``runtime.identity.token_refusal``): every call but grpc.health.v1
and reflection needs ``authorization: Bearer <token>``; a refusal is a Connect
``unauthenticated`` error (HTTP 401) with the same message.

Browsers add one more question. The lab's web page is served from another loopback port than
the services it calls, so every call is cross-origin, and the browser first asks (a CORS
preflight) whether that origin may send the ``authorization`` header at all. The answer is yes
only for the origins of the lab's own ``web`` instances, which ``allowed_origins()`` supplies
(the supervisor knows them from its process table, an agent from the broker). Any other origin
gets no CORS headers, so a page from elsewhere cannot read the answers even if it guessed
everything else.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from runtime.identity import token_refusal

# What the Connect, gRPC-Web and lab clients send beside the body.
ALLOWED_HEADERS = (
    "authorization, content-type, connect-protocol-version, connect-timeout-ms, "
    "connect-content-encoding, connect-accept-encoding, x-grpc-web, x-user-agent, grpc-timeout, "
    "x-correlation-id"
)
EXPOSED_HEADERS = "grpc-status, grpc-message, grpc-status-details-bin, x-test-id, x-correlation-id"
PREFLIGHT_MAX_AGE_S = 600
ORIGINS_TTL_S = 2.0  # how long a looked-up set of web origins is trusted before asking again

Origins = Callable[[], Awaitable[set[str]]]
# ``/package.Service/Method``: a call. Anything else (the web page's files) is not an RPC and
# needs no token: the page holds no secret, and it must load before it can ask for one.
RPC_PATH = re.compile(r"^/[A-Za-z_][\w.]*\.[A-Za-z_]\w*/[A-Za-z_]\w*$")


def web_origins(ports: Iterable[int]) -> set[str]:
    """The origins a browser reports for a page served on these loopback ports."""
    return {f"http://{host}:{port}" for port in ports if port for host in ("127.0.0.1", "localhost")}


class CachedOrigins:
    """``allowed_origins()`` over a slower lookup (the broker), remembered for ``ORIGINS_TTL_S``.

    A web page that just started is allowed within one TTL; a failed lookup allows nothing.
    """

    def __init__(self, lookup: Origins, clock: Callable[[], float] = time.monotonic) -> None:
        self._lookup = lookup
        self._clock = clock
        self._origins: set[str] = set()
        self._fetched_at = float("-inf")

    async def allows(self, origin: str) -> bool:
        """True when ``origin`` is one of the lab's web pages."""
        now = self._clock()
        if now - self._fetched_at >= ORIGINS_TTL_S:
            self._fetched_at = now
            try:
                self._origins = await self._lookup()
            except Exception:  # noqa: BLE001 - no answer means no origin is allowed, not a crash
                self._origins = set()
        return origin in self._origins


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _send_json(send: Any, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", b"application/json"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def guard(app: Any, *, token: str, lab_dir: str = "", origins: CachedOrigins | None = None) -> Any:
    """Wrap a Connect ASGI ``app``: answer preflights, add CORS headers, refuse calls without the token."""

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        cors: list[tuple[bytes, bytes]] = []
        if origin is not None and origins is not None and await origins.allows(origin):
            cors = [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-expose-headers", EXPOSED_HEADERS.encode()),
                (b"vary", b"origin"),
            ]
        if scope.get("method") == "OPTIONS":
            if not cors:
                await _send_json(send, 403, {"code": "permission_denied", "message": "origin not allowed"}, [])
                return
            preflight = [
                (b"access-control-allow-methods", b"POST, GET"),
                (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                (b"access-control-max-age", str(PREFLIGHT_MAX_AGE_S).encode()),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": [*cors, *preflight]})
            await send({"type": "http.response.body", "body": b""})
            return
        path = scope.get("path", "")
        metadata = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", ())]
        refusal = token_refusal(path, metadata, token, lab_dir) if RPC_PATH.match(path) else None
        if refusal is not None:
            await _send_json(send, 401, {"code": "unauthenticated", "message": refusal}, cors)
            return
        if not cors:
            await app(scope, receive, send)
            return

        async def send_with_cors(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *cors]}
            await send(message)

        await app(scope, receive, send_with_cors)

    return guarded
