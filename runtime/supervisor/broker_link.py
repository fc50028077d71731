"""The supervisor's line to the broker: ReportExit, sent without blocking the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import grpc

from runtime.v1 import broker_pb2, broker_pb2_grpc

REPORT_EXIT_TIMEOUT_S = 0.5

_log = logging.getLogger(__name__)


class BrokerLink:
    """One cached channel to the broker and the ReportExit calls in flight."""

    def __init__(self) -> None:
        self._channel: grpc.aio.Channel | None = None
        self._address = ""
        self._tasks: set[asyncio.Task[Any]] = set()

    def report_exit(self, address: str, instance_id: str, pid: int, reason: str) -> None:
        """Tell the broker at ``address`` that ``pid`` of ``instance_id`` exited (fire and forget)."""
        if self._channel is None or self._address != address:
            if self._channel is not None:
                self._spawn(self._channel.close())
            self._channel = grpc.aio.insecure_channel(address)
            self._address = address
        stub = broker_pb2_grpc.BrokerServiceStub(self._channel)
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
