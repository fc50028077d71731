"""Client-side discovery: a grpc.Channel that finds its servers through the broker.

    stub = CalculatorServiceStub(connect("calculator.v1.CalculatorService"))
    stub.Add(AddRequest(a=2, b=3))     # round robin over every healthy instance

connect() asks the broker once (LookupService, carrying the correlation id), then a background
thread follows WatchServices from that revision: removed or UNHEALTHY instances leave the rotation
at once, new ones join. If the watch cannot resume (OUT_OF_RANGE, e.g. the broker restarted) it
lists again from revision 0. A unary call that fails UNAVAILABLE on one instance is retried once
on the next.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import grpc

from runtime.client import auth, correlation
from runtime.client.rotation import Member, Rotation
from runtime.errors import DiscoveryError, NoInstances
from runtime.identity import ENV_BROKER_ADDR, broker_address_from_env
from runtime.v1 import broker_pb2, broker_pb2_grpc

log = logging.getLogger("runtime.client.discovery")

DEFAULT_TIMEOUT_S = 5.0
WATCH_BACKOFF_START_S = 0.05
WATCH_BACKOFF_MAX_S = 1.0
WATCH_JOIN_TIMEOUT_S = 2.0
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def _channel_opener(token: str) -> Callable[[str], grpc.Channel]:
    def open_channel(address: str) -> grpc.Channel:
        raw = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        return grpc.intercept_channel(
            raw, *auth.client_interceptors(token), *correlation.client_interceptors()
        )

    return open_channel


def _close_channel(channel: grpc.Channel) -> None:
    channel.close()


def lookup_failed(service: str, broker_address: str, exc: grpc.RpcError) -> DiscoveryError:
    """The DiscoveryError for a LookupService that failed with ``exc``."""
    code = exc.code()  # type: ignore[attr-defined]
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return DiscoveryError(
            f"broker at {broker_address} is unreachable ({code.name}) while looking up {service}; "
            "is the lab running?"
        )
    return DiscoveryError(
        f"broker at {broker_address} refused the lookup of {service}: {code.name}: {exc.details()}"  # type: ignore[attr-defined]
    )


def no_instances(service: str, broker_address: str) -> NoInstances:
    """The NoInstances error for a lookup that found nothing."""
    return NoInstances(
        f"no instances of {service} are registered with the broker at {broker_address} "
        "(is a server running and healthy?)"
    )


class DiscoveryChannel(grpc.Channel):
    """A channel whose every call goes to the next healthy instance of one gRPC service.

    Example:
        >>> channel = connect("calculator.v1.CalculatorService")  # doctest: +SKIP
        >>> CalculatorServiceStub(channel).Add(AddRequest(a=2, b=3)).result  # doctest: +SKIP
        5.0
    """

    def __init__(
        self,
        service: str,
        broker_address: str | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        watch: bool = True,
        token: str | None = None,
    ) -> None:
        self.service = service
        self.token = auth.resolve_token(token)
        self.broker_address = broker_address or broker_address_from_env()
        if not self.broker_address:
            raise DiscoveryError(
                f"no broker address to look up {service}: set {ENV_BROKER_ADDR} or pass broker_address= "
                "(start the lab first, e.g. Lab.up() or `runtime-lab up`)"
            )
        self.timeout_s = timeout_s
        self.rotation: Rotation[grpc.Channel] = Rotation(_channel_opener(self.token), _close_channel)
        self._closed = False
        raw = grpc.insecure_channel(self.broker_address, options=CHANNEL_OPTIONS)
        self._broker_raw = raw
        self._broker = broker_pb2_grpc.BrokerServiceStub(
            grpc.intercept_channel(
                raw, *auth.client_interceptors(self.token), *correlation.client_interceptors()
            )
        )
        self._watcher: _Watcher | None = None
        try:
            self.refresh()
        except DiscoveryError:
            raw.close()
            raise
        if watch:
            self._watcher = _Watcher(self)
            self._watcher.start()

    # -- membership --------------------------------------------------------------------------

    def refresh(self) -> None:
        """Look the service up again (one LookupService); raises DiscoveryError when none is there."""
        request = broker_pb2.LookupServiceRequest(service_name=self.service)
        try:
            response = self._broker.LookupService(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise lookup_failed(self.service, self.broker_address, exc) from None
        if not response.instances:
            raise no_instances(self.service, self.broker_address)
        self.rotation.replace(response.instances, response.revision)

    def instances(self) -> list[broker_pb2.ServiceInstance]:
        """The instances currently in the rotation."""
        return self.rotation.instances()

    def _pick_or_refresh(self) -> Member[grpc.Channel]:
        member = self.rotation.pick()
        if member is None:
            self.refresh()  # the watch may lag (or the broker restarted): ask once more
            member = self.rotation.pick()
        if member is None:
            raise NoInstances(f"no instances of {self.service} are in the rotation right now")
        return member

    # -- grpc.Channel ------------------------------------------------------------------------

    def unary_unary(
        self, method, request_serializer=None, response_deserializer=None, _registered_method=False
    ):
        return _Routed(self, "unary_unary", method, request_serializer, response_deserializer, retry=True)

    def unary_stream(
        self, method, request_serializer=None, response_deserializer=None, _registered_method=False
    ):
        return _Routed(self, "unary_stream", method, request_serializer, response_deserializer, retry=False)

    def stream_unary(
        self, method, request_serializer=None, response_deserializer=None, _registered_method=False
    ):
        return _Routed(self, "stream_unary", method, request_serializer, response_deserializer, retry=False)

    def stream_stream(
        self, method, request_serializer=None, response_deserializer=None, _registered_method=False
    ):
        return _Routed(self, "stream_stream", method, request_serializer, response_deserializer, retry=False)

    def subscribe(
        self, callback: Callable[[grpc.ChannelConnectivity], None], try_to_connect: bool = False
    ) -> None:
        """Connectivity of the broker channel (instances come and go; the broker is the anchor)."""
        self._broker_raw.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Callable[[grpc.ChannelConnectivity], None]) -> None:
        """Stop reporting broker connectivity to ``callback``."""
        self._broker_raw.unsubscribe(callback)

    def close(self) -> None:
        """Stop the watch thread and close every channel."""
        if self._closed:
            return
        self._closed = True
        if self._watcher is not None:
            self._watcher.stop()
        for channel in self.rotation.clear():
            channel.close()
        self._broker_raw.close()

    def __enter__(self) -> DiscoveryChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Routed:
    """A multi-callable that sends each call to the next instance (unary calls retry once)."""

    def __init__(
        self, owner: DiscoveryChannel, kind: str, method: str, ser: Any, deser: Any, *, retry: bool
    ) -> None:
        self._owner = owner
        self._kind = kind
        self._method = method
        self._ser = ser
        self._deser = deser
        self._retry = retry

    def _target(self, member: Member[grpc.Channel]) -> Any:
        key = (self._kind, self._method)
        target = member.callables.get(key)
        if target is None:
            factory = getattr(member.channel, self._kind)
            target = factory(self._method, request_serializer=self._ser, response_deserializer=self._deser)
            member.callables[key] = target
        return target

    def _invoke(self, attr: str, request: Any, kwargs: dict[str, Any]) -> Any:
        member = self._owner._pick_or_refresh()
        try:
            return getattr(self._target(member), attr)(request, **kwargs)
        except grpc.RpcError as exc:
            if not self._retry or exc.code() != grpc.StatusCode.UNAVAILABLE:  # type: ignore[attr-defined]
                raise
            other = self._owner.rotation.pick(exclude=member.instance.instance_id)
            if other is None:
                raise
            log.info(
                "%s unavailable; retrying on %s", member.instance.instance_id, other.instance.instance_id
            )
            return getattr(self._target(other), attr)(request, **kwargs)

    def __call__(self, request: Any, **kwargs: Any) -> Any:
        return self._invoke("__call__", request, kwargs)

    def with_call(self, request: Any, **kwargs: Any) -> Any:
        return self._invoke("with_call", request, kwargs)

    def future(self, request: Any, **kwargs: Any) -> Any:
        return self._target(self._owner._pick_or_refresh()).future(request, **kwargs)


class _Watcher(threading.Thread):
    """Follows WatchServices for one DiscoveryChannel; resumes from its last revision."""

    def __init__(self, owner: DiscoveryChannel) -> None:
        super().__init__(name=f"discovery-watch-{owner.service}", daemon=True)
        self._owner = owner
        self._stopping = threading.Event()
        self._call: Any = None
        self._channel = grpc.insecure_channel(owner.broker_address, options=CHANNEL_OPTIONS)

    def run(self) -> None:
        stub = broker_pb2_grpc.BrokerServiceStub(auth.intercept(self._channel, self._owner.token))
        owner = self._owner
        backoff = WATCH_BACKOFF_START_S
        while not self._stopping.is_set():
            request, fold = owner.rotation.watch_request(owner.service)
            try:
                self._call = stub.WatchServices(request)
                if self._stopping.is_set():
                    self._call.cancel()
                for event in self._call:
                    fold.feed(event)
                    backoff = WATCH_BACKOFF_START_S
            except grpc.RpcError as exc:
                if self._stopping.is_set():
                    return
                code = exc.code()  # type: ignore[attr-defined]
                if code == grpc.StatusCode.OUT_OF_RANGE:
                    log.info("watch of %s cannot resume (%s); listing again", owner.service, exc.details())  # type: ignore[attr-defined]
                    owner.rotation.revision = 0
                    continue
                log.info(
                    "watch of %s interrupted (%s); resuming from revision %d",
                    owner.service,
                    code.name,
                    owner.rotation.revision,
                )
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, WATCH_BACKOFF_MAX_S)

    def stop(self) -> None:
        """End the watch and wait for the thread (bounded)."""
        self._stopping.set()
        call = self._call
        if call is not None:
            call.cancel()
        self.join(WATCH_JOIN_TIMEOUT_S)
        self._channel.close()


def connect(
    service: str,
    broker_address: str | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    token: str | None = None,
) -> DiscoveryChannel:
    """A channel to every healthy instance of ``service``, found through the broker.

    ``token`` is the lab's (default: ``$LAB_TOKEN``, else ``$LAB_DIR/token``); every call sends it.

    Raises:
        DiscoveryError: the broker is unreachable or knows no instance of ``service``.
    """
    return DiscoveryChannel(service, broker_address, timeout_s=timeout_s, token=token)
