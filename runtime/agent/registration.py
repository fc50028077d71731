"""Keeps one instance registered with the broker: Register, then a KeepAlive stream, forever.

When the stream breaks, the lease is unknown (NOT_FOUND) or the broker restarts, the instance
registers again with backoff; it never crashes the service. close() deregisters with a short
deadline so the instance leaves lookups at once instead of after its TTL.

    reg = Registration("127.0.0.1:50051", lambda: instance)
    await reg.start()              # first attempt (bounded wait), then keeps going in the background
    await reg.close("shutting down")
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import grpc

from runtime.client import auth
from runtime.v1 import broker_pb2, broker_pb2_grpc

log = logging.getLogger("runtime.agent.registration")

DEFAULT_TTL_MS = 5000
# The lab starts the broker and its dependents side by side (lab.yaml: `depends_on: {broker:
# started}`), so the first registration may wait for the broker to finish starting; READY waits
# for it (READY means discoverable) but not beyond this, within the supervisor's READY timeout
# (lab.yaml ready_timeout_s, 15 s by default).
FIRST_REGISTER_TIMEOUT_S = 10.0
REGISTER_TIMEOUT_S = 2.0
DEREGISTER_TIMEOUT_S = 1.0
KEEPALIVE_FRACTION = 3  # renew three times per TTL
BACKOFF_START_S = 0.05
BACKOFF_MAX_S = 2.0
# Reconnect quickly to a broker that is starting or restarting (gRPC's default first backoff is a
# whole second): a refused connect on loopback costs next to nothing, and a broker that answers
# just after an attempt delays READY until the next one. At lab start the broker's dependents are
# spawned beside it and try before it listens: with attempts 50, 80, 128, 205, 250 ms apart (the
# backoff grows x1.6) they became READY up to ~0.13 s after the broker; 20 ms growing to at most
# 50 ms bounds that to 50 ms, for a few more refused connects while the broker starts. The
# minimum connect deadline stays 50 ms (a loaded broker may take that long to accept).
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 20),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 50),
]


class Registration:
    """One instance's registration with the broker, kept alive in a background task.

    Example:
        >>> reg = Registration("127.0.0.1:50051", lambda: broker_pb2.ServiceInstance(instance_id="calc-1"))
        >>> reg.lease_id
        ''
    """

    def __init__(
        self,
        broker_address: str,
        instance: Callable[[], broker_pb2.ServiceInstance],
        *,
        ttl_ms: int = DEFAULT_TTL_MS,
    ) -> None:
        self.broker_address = broker_address
        self.ttl_ms = ttl_ms
        self.lease_id = ""
        self.registrations = 0
        self._instance = instance
        self._channel: grpc.aio.Channel | None = None
        self._task: asyncio.Task[None] | None = None
        self._registered = asyncio.Event()
        self._closing = False

    async def start(self) -> bool:
        """Start the background loop; wait (bounded) for the first registration. True if registered."""
        self._channel = auth.aio_insecure_channel(self.broker_address, options=CHANNEL_OPTIONS)
        self._task = asyncio.create_task(self._keep_registered(), name="broker-registration")
        try:
            await asyncio.wait_for(self._registered.wait(), FIRST_REGISTER_TIMEOUT_S)
        except TimeoutError:
            log.warning("broker at %s did not accept the registration yet; still trying", self.broker_address)
            return False
        return True

    async def close(self, reason: str = "shutting down") -> None:
        """Deregister (short deadline), stop the keepalive loop and close the channel."""
        self._closing = True
        if self._channel is not None and self.lease_id:
            stub = broker_pb2_grpc.BrokerServiceStub(self._channel)
            request = broker_pb2.DeregisterRequest(
                instance_id=self._instance().instance_id, lease_id=self.lease_id, reason=reason
            )
            try:
                await stub.Deregister(request, timeout=DEREGISTER_TIMEOUT_S)
            except grpc.aio.AioRpcError as exc:
                log.warning(
                    "could not deregister from broker at %s: %s", self.broker_address, exc.code().name
                )
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._channel is not None:
            await self._channel.close()

    async def _keep_registered(self) -> None:
        assert self._channel is not None
        stub = broker_pb2_grpc.BrokerServiceStub(self._channel)
        backoff = BACKOFF_START_S
        while not self._closing:
            try:
                await self._register(stub)
                backoff = BACKOFF_START_S
                await self._keep_alive(stub)
            except grpc.aio.AioRpcError as exc:
                if self._closing:
                    return
                log.info(
                    "broker registration interrupted (%s: %s); registering again",
                    exc.code().name,
                    exc.details(),
                )
            except Exception as exc:  # noqa: BLE001 - a lost broker must never end the service
                if self._closing:
                    return
                log.warning("broker registration failed (%r); registering again", exc)
            self.lease_id = ""
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _register(self, stub: broker_pb2_grpc.BrokerServiceStub) -> None:
        instance = self._instance()
        response = await stub.Register(
            broker_pb2.RegisterRequest(instance=instance, ttl_ms=self.ttl_ms),
            timeout=REGISTER_TIMEOUT_S,
            wait_for_ready=True,
        )
        self.lease_id = response.lease_id
        self.ttl_ms = response.ttl_ms
        self.registrations += 1
        self._registered.set()
        log.info("registered %s with broker at %s", instance.instance_id, self.broker_address)

    async def _keep_alive(self, stub: broker_pb2_grpc.BrokerServiceStub) -> None:
        interval = self.ttl_ms / 1000 / KEEPALIVE_FRACTION
        call = stub.KeepAlive()
        ended = asyncio.Event()
        # Notice a broken stream (broker stopped or restarted) at once, not at the next renewal.
        call.add_done_callback(lambda _call: ended.set())
        try:
            while not self._closing:
                await call.write(broker_pb2.KeepAliveRequest(lease_id=self.lease_id))
                # A broker that stops answering for a whole TTL has dropped us anyway.
                response = await asyncio.wait_for(call.read(), self.ttl_ms / 1000)
                if response is grpc.aio.EOF:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), interval)
                if call.done():
                    break
            if call.done() and not self._closing:
                code = await call.code()
                log.info("broker ended the keepalive stream (%s: %s)", code.name, await call.details())
        except TimeoutError:
            log.info("broker did not answer a keepalive within %d ms", self.ttl_ms)
        finally:
            call.cancel()
