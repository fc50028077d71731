"""Discovery for asyncio code: the grpc.aio counterpart of runtime.client.discovery.connect().

    channel = await connect_aio("calculator.v1.CalculatorService")
    reply = await CalculatorServiceStub(channel).Add(AddRequest(a=2, b=3))
    await channel.close()

Same rules as the sync channel: one LookupService first (carrying the correlation id), then a
watch task follows WatchServices from that revision (OUT_OF_RANGE -> list again); round robin per
call; a unary call that fails UNAVAILABLE is retried once on the next instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import grpc

from runtime.client import auth, correlation
from runtime.client.discovery import CHANNEL_OPTIONS, DEFAULT_TIMEOUT_S, lookup_failed, no_instances
from runtime.client.rotation import Member, Rotation
from runtime.errors import DiscoveryError, NoInstances
from runtime.identity import ENV_BROKER_ADDR, broker_address_from_env
from runtime.v1 import broker_pb2, broker_pb2_grpc

log = logging.getLogger("runtime.client.discovery")

WATCH_BACKOFF_START_S = 0.05
WATCH_BACKOFF_MAX_S = 1.0


class AioDiscoveryChannel:
    """A grpc.aio-style channel whose every call goes to the next healthy instance of one service.

    Example:
        >>> channel = await connect_aio("CalculatorService")  # doctest: +SKIP
        >>> (await CalculatorServiceStub(channel).Add(AddRequest(a=2, b=3))).result  # doctest: +SKIP
        5.0
    """

    def __init__(
        self,
        service: str,
        broker_address: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        token: str | None = None,
    ):
        self.service = service
        self.token = auth.resolve_token(token)
        self.broker_address = broker_address or broker_address_from_env()
        if not self.broker_address:
            raise DiscoveryError(
                f"no broker address to look up {service}: set {ENV_BROKER_ADDR} or pass broker_address="
            )
        self.timeout_s = timeout_s
        self._closing: set[asyncio.Task[None]] = set()
        self.rotation: Rotation[grpc.aio.Channel] = Rotation(self._open_channel, self._close_later)
        self._broker_channel = auth.aio_insecure_channel(
            self.broker_address,
            token=self.token,
            options=CHANNEL_OPTIONS,
            interceptors=correlation.aio_client_interceptors(),
        )
        self._broker = broker_pb2_grpc.BrokerServiceStub(self._broker_channel)
        self._watch: asyncio.Task[None] | None = None

    def _open_channel(self, address: str) -> grpc.aio.Channel:
        return auth.aio_insecure_channel(
            address,
            token=self.token,
            options=CHANNEL_OPTIONS,
            interceptors=correlation.aio_client_interceptors(),
        )

    def _close_later(self, channel: grpc.aio.Channel) -> None:
        task = asyncio.get_running_loop().create_task(channel.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def start(self) -> None:
        """The first lookup, then the watch task. Raises DiscoveryError."""
        await self.refresh()
        self._watch = asyncio.create_task(self._follow(), name=f"discovery-watch-{self.service}")

    async def refresh(self) -> None:
        """Look the service up again; raises DiscoveryError when none is there."""
        request = broker_pb2.LookupServiceRequest(service_name=self.service)
        try:
            response = await self._broker.LookupService(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise lookup_failed(self.service, self.broker_address, exc) from None
        if not response.instances:
            raise no_instances(self.service, self.broker_address)
        self.rotation.replace(response.instances, response.revision)

    async def _pick(self) -> Member[grpc.aio.Channel]:
        member = self.rotation.pick()
        if member is None:
            await self.refresh()
            member = self.rotation.pick()
        if member is None:
            raise NoInstances(f"no instances of {self.service} are in the rotation right now")
        return member

    async def _follow(self) -> None:
        backoff = WATCH_BACKOFF_START_S
        while True:
            request, fold = self.rotation.watch_request(self.service)
            call = self._broker.WatchServices(request)
            try:
                async for event in call:
                    fold.feed(event)
                    backoff = WATCH_BACKOFF_START_S
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.OUT_OF_RANGE:
                    self.rotation.revision = 0
                    continue
                log.info("watch of %s interrupted (%s); resuming", self.service, exc.code().name)
            finally:
                call.cancel()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, WATCH_BACKOFF_MAX_S)

    def unary_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool = False,
    ) -> _AioRouted:
        return _AioRouted(self, "unary_unary", method, request_serializer, response_deserializer)

    def unary_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool = False,
    ) -> _AioRouted:
        return _AioRouted(self, "unary_stream", method, request_serializer, response_deserializer)

    def stream_unary(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool = False,
    ) -> _AioRouted:
        return _AioRouted(self, "stream_unary", method, request_serializer, response_deserializer)

    def stream_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool = False,
    ) -> _AioRouted:
        return _AioRouted(self, "stream_stream", method, request_serializer, response_deserializer)

    async def close(self) -> None:
        """Stop the watch task and close every channel."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        for channel in self.rotation.clear():
            await channel.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await self._broker_channel.close()

    async def __aenter__(self) -> AioDiscoveryChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _AioRouted:
    """Unary calls: a coroutine that picks, calls and retries once on UNAVAILABLE.
    Streaming calls: the call object of the next instance (no retry)."""

    def __init__(self, owner: AioDiscoveryChannel, kind: str, method: str, ser: Any, deser: Any) -> None:
        self._owner = owner
        self._kind = kind
        self._method = method
        self._ser = ser
        self._deser = deser

    def _target(self, member: Member[grpc.aio.Channel]) -> Any:
        key = (self._kind, self._method)
        if key not in member.callables:
            factory = getattr(member.channel, self._kind)
            member.callables[key] = factory(
                self._method, request_serializer=self._ser, response_deserializer=self._deser
            )
        return member.callables[key]

    def __call__(self, request: Any = None, **kwargs: Any) -> Any:
        if self._kind == "unary_unary":
            return self._unary(request, kwargs)
        member = self._owner.rotation.pick()
        if member is None:
            raise NoInstances(f"no instances of {self._owner.service} are in the rotation right now")
        return self._target(member)(request, **kwargs)

    async def _unary(self, request: Any, kwargs: dict[str, Any]) -> Any:
        member = await self._owner._pick()
        try:
            return await self._target(member)(request, **kwargs)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            other = self._owner.rotation.pick(exclude=member.instance.instance_id)
            if other is None:
                raise
            log.info(
                "%s unavailable; retrying on %s", member.instance.instance_id, other.instance.instance_id
            )
            return await self._target(other)(request, **kwargs)


async def connect_aio(
    service: str,
    broker_address: str | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    token: str | None = None,
) -> AioDiscoveryChannel:
    """An asyncio channel to every healthy instance of ``service``, found through the broker.

    ``token`` is the lab's (default: ``$LAB_TOKEN``, else ``$LAB_DIR/token``); every call sends it.

    Raises:
        DiscoveryError: the broker is unreachable or knows no instance of ``service``.
    """
    channel = AioDiscoveryChannel(service, broker_address, timeout_s=timeout_s, token=token)
    try:
        await channel.start()
    except BaseException:
        await channel.close()
        raise
    return channel
