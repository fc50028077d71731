"""Lab access over gRPC: callers send the lab's token, servers refuse calls without it.

A lab belongs to the user who started it. The supervisor creates a random token with the lab,
keeps it in ``<lab dir>/token`` (mode 0600, readable only by the owner) and gives it to every
lab process as ``LAB_TOKEN``. Every RPC except grpc.health.v1 and server reflection must carry
``authorization: Bearer <token>``; the rule itself (what is open, the refusal message, the
constant-time comparison) is ``runtime.identity.token_refusal``, decided alike by every server.

Servers (the agent of every Python service, the supervisor daemon):

- ``server_interceptor(token=, lab_dir=)``: a grpc.aio interceptor that answers UNAUTHENTICATED;
  None outside a lab (no token to check).

Callers:

- ``resolve_token(token=, lab_dir=)``: an explicit token, else ``$LAB_TOKEN``, else the token file
  of ``lab_dir`` (or ``$LAB_DIR``); "" when none can be read (the server then says where it is).
- ``metadata(token)``: the header pair, for a call's ``metadata=``.
- ``client_interceptors(token)`` / ``aio_client_interceptors(token)``: add the header to every call.
- ``insecure_channel(address)`` / ``aio_insecure_channel(address)``: loopback channels that do so.

Example:
    >>> metadata("s3cret")
    (('authorization', 'Bearer s3cret'),)
    >>> resolve_token("given", env={})
    'given'
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import grpc

from runtime.client.call_metadata import SyncMetadata, aio_metadata_interceptors
from runtime.identity import AUTH_HEADER, AUTH_SCHEME, ENV_LAB_DIR, ENV_TOKEN, TOKEN_FILE, token_refusal

# A token is secrets.token_urlsafe(32): 43 characters. Anything far longer is not a token.
MAX_TOKEN_CHARS = 256


def token_path(lab_dir: str | os.PathLike[str]) -> str:
    """Where the lab in ``lab_dir`` keeps its token."""
    return os.path.join(os.fspath(lab_dir), TOKEN_FILE)


def read_token(lab_dir: str | os.PathLike[str]) -> str:
    """The token of the lab in ``lab_dir``, or "" when the file is missing or not ours to read.

    Not readable is not an error here: the caller then sends no token and the service answers
    UNAUTHENTICATED naming the file, which tells the learner more than a local PermissionError.
    """
    try:
        with open(token_path(lab_dir), encoding="ascii") as fh:
            return fh.read(MAX_TOKEN_CHARS + 1).strip()
    except (OSError, UnicodeDecodeError):
        return ""


def resolve_token(
    token: str | None = None,
    *,
    lab_dir: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """The token to send: ``token`` if given, else ``$LAB_TOKEN``, else the lab dir's token file.

    Args:
        token: an explicit token (a Lab handle passes the one of its own lab dir).
        lab_dir: the lab dir to read ``token`` from when the environment has none.
        env: the environment to read (default ``os.environ``).
    """
    if token is not None:
        return token
    env = os.environ if env is None else env
    from_env = env.get(ENV_TOKEN, "")
    if from_env:
        return from_env
    folder = lab_dir if lab_dir is not None else env.get(ENV_LAB_DIR, "")
    return read_token(folder) if folder else ""


def metadata(token: str) -> tuple[tuple[str, str], ...]:
    """``(("authorization", "Bearer <token>"),)``, or ``()`` without a token."""
    return ((AUTH_HEADER, f"{AUTH_SCHEME} {token}"),) if token else ()


def _with_token(pairs: Any, header: tuple[tuple[str, str], ...]) -> list[tuple[str, Any]] | None:
    """Call metadata with the header added, or None when there is nothing to add."""
    listed = list(pairs or ())
    if not header or any(k == AUTH_HEADER for k, _ in listed):
        return None
    return [*listed, *header]


# -- sync channels -------------------------------------------------------------------------


def client_interceptors(token: str | None = None) -> list[Any]:
    """Sync-channel interceptors sending the token: ``grpc.intercept_channel(ch, *these)``.

    ``token`` None means :func:`resolve_token` (environment, then ``$LAB_DIR/token``).
    """
    header = metadata(resolve_token(token))
    return [SyncMetadata(partial(_with_token, header=header))] if header else []


def intercept(channel: grpc.Channel, token: str | None = None) -> grpc.Channel:
    """``channel`` sending the token with every call (unchanged when there is no token)."""
    interceptors = client_interceptors(token)
    return grpc.intercept_channel(channel, *interceptors) if interceptors else channel


class ClosingChannel(grpc.Channel):
    """An intercepted channel that also closes the raw channel under it (``with`` works too).

    ``grpc.intercept_channel`` returns a channel whose ``close()`` is not part of the public
    API, so the raw channel is kept here and closed explicitly.
    """

    def __init__(self, raw: grpc.Channel, token: str | None = None) -> None:
        self._raw = raw
        self._channel = intercept(raw, token)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        self._channel.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        self._channel.unsubscribe(callback)

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_unary(method, *args, **kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_stream(method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_unary(method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_stream(method, *args, **kwargs)

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> ClosingChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def insecure_channel(
    address: str, *, token: str | None = None, options: Sequence[tuple[str, Any]] | None = None
) -> ClosingChannel:
    """A plaintext loopback channel to a lab service that sends the lab's token.

    Example:
        >>> with insecure_channel("127.0.0.1:50051", token="s3cret") as ch:  # doctest: +SKIP
        ...     BrokerServiceStub(ch).ListServices(ListServicesRequest())
    """
    return ClosingChannel(grpc.insecure_channel(address, options=options), token)


# -- grpc.aio channels ---------------------------------------------------------------------


def aio_client_interceptors(token: str | None = None) -> list[grpc.aio.ClientInterceptor]:
    """grpc.aio interceptors sending the token: ``grpc.aio.insecure_channel(a, interceptors=...)``.

    ``token`` None means :func:`resolve_token`; empty when there is no token to send.
    """
    header = metadata(resolve_token(token))
    if not header:
        return []
    return aio_metadata_interceptors(partial(_with_token, header=header))


def aio_insecure_channel(
    address: str,
    *,
    token: str | None = None,
    options: Sequence[tuple[str, Any]] | None = None,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    """A plaintext loopback grpc.aio channel that sends the lab's token (then ``interceptors``)."""
    chain = [*aio_client_interceptors(token), *interceptors]
    return grpc.aio.insecure_channel(address, options=options, interceptors=chain or None)


# -- servers ------------------------------------------------------------------------------


def _deny(message: str) -> Callable[..., Any]:
    async def handler(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return handler


class TokenCheck(grpc.aio.ServerInterceptor):
    """Refuses every call but health and reflection unless it carries the lab's token.

    Install it first in a server's chain: a refused call is never timed, faulted or logged, and
    its request bytes are never parsed.
    """

    def __init__(self, token: str, *, lab_dir: str = "") -> None:
        if not token:
            raise ValueError("TokenCheck needs the lab's token; outside a lab install no check")
        self._token = token
        self._lab_dir = lab_dir

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        refusal = token_refusal(
            handler_call_details.method,
            handler_call_details.invocation_metadata or (),
            self._token,
            self._lab_dir,
        )
        handler = await continuation(handler_call_details)
        if refusal is None or handler is None:
            return handler  # None: an unknown method is UNIMPLEMENTED for anyone
        return refusing_handler(handler, refusal)


def refusing_handler(handler: grpc.RpcMethodHandler, refusal: str) -> grpc.RpcMethodHandler:
    """A handler of ``handler``'s shape that answers UNAUTHENTICATED ``refusal`` (request unread)."""
    deny = _deny(refusal)
    # The refusal's shape must match the method's, or grpc would mis-handle the stream.
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(deny)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(deny)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(deny)
    return grpc.stream_stream_rpc_method_handler(deny)


def server_interceptor(token: str | None = None, *, lab_dir: str | None = None) -> TokenCheck | None:
    """The token check for a lab server, or None outside a lab (no token to check).

    Args:
        token: the lab's token (default ``$LAB_TOKEN``, which the supervisor gives its children).
        lab_dir: named in the refusal message (default ``$LAB_DIR``).
    """
    secret = os.environ.get(ENV_TOKEN, "") if token is None else token
    if not secret:
        return None
    folder = os.environ.get(ENV_LAB_DIR, "") if lab_dir is None else lab_dir
    return TokenCheck(secret, lab_dir=folder)
