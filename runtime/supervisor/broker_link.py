"""The supervisor's line to the broker: ReportExit, sent without blocking the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import grpc

from runtime.client import auth
from runtime.v1 import broker_pb2, broker_pb2_grpc

REPORT_EXIT_TIMEOUT_S = 0.5

_log = logging.getLogger(__name__)


class BrokerLink:
    """One cached channel to the broker and the ReportExit calls in flight."""

    def __init__(self) -> None:
        self._channel: grpc.aio.Channel | None = None
        self._address = ""
        self._tasks: set[asyncio.Task[Any]] = set()

    def connect(self, address: str) -> grpc.aio.Channel:
        """Open (and warm up) the channel to the broker at ``address`` as soon as it is ready.

        The first ReportExit must not pay for the TCP and HTTP/2 handshake: the broker gives a
        crash report only a short window to name the removal before it falls back to
        "keepalive stream lost".
        """
        if self._channel is None or self._address != address:
            if self._channel is not None:
                self._spawn(self._channel.close())
            self._channel = auth.aio_insecure_channel(address)  # LAB_TOKEN of the daemon
            self._address = address
            self._spawn(self._warm_up(self._channel))
        return self._channel

    @staticmethod
    async def _warm_up(channel: grpc.aio.Channel) -> None:
        with contextlib.suppress(asyncio.TimeoutError, grpc.aio.UsageError):
            await asyncio.wait_for(channel.channel_ready(), REPORT_EXIT_TIMEOUT_S * 4)

    def report_exit(self, address: str, instance_id: str, pid: int, reason: str) -> None:
        """Tell the broker at ``address`` that ``pid`` of ``instance_id`` exited (fire and forget)."""
        stub = broker_pb2_grpc.BrokerServiceStub(self.connect(address))
        request = broker_pb2.ReportExitRequest(instance_id=instance_id, pid=pid, reason=reason)

        async def send() -> None:
            try:
                await stub.ReportExit(request, timeout=REPORT_EXIT_TIMEOUT_S)
            except grpc.aio.AioRpcError as exc:
                _log.info("ReportExit for %s to the broker failed: %s", instance_id, exc.code().name)

        self._spawn(send())

    async def close(self) -> None:
        """Let calls in flight finish (bounded by their deadline), then close the channel."""
        if self._tasks:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*self._tasks, return_exceptions=True), REPORT_EXIT_TIMEOUT_S * 2
                )
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
