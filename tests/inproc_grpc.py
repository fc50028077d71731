"""A ``grpc.aio`` server in the test's own process, on 127.0.0.1:0, for service-logic tests.

    server = AioServer.start(lambda s: config_pb2_grpc.add_ConfigServiceServicer_to_server(
        ConfigService(ConfigStore(None)), s))
    stub = config_pb2_grpc.ConfigServiceStub(grpc.insecure_channel(server.address))
    ...
    server.stop()

Where a subprocess is not the point (what a servicer answers, its statuses, its watch streams),
this is the fast tier: real gRPC over a real loopback socket, but no interpreter start, no READY
line, no agent. The server's asyncio loop runs in a thread of its own, so the test stays plain
synchronous code with ordinary blocking stubs (no pytest-asyncio needed), and the servicer is
built inside that loop (servicers may create asyncio objects in ``__init__``).
Tests about the process itself (READY, signals, persistence across a SIGKILL) keep using
``service_process.start_service``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

import grpc

T = TypeVar("T")

START_TIMEOUT_S = 10.0
STOP_GRACE_S = 1.0  # in-flight calls (open watch streams) get this long, then are cancelled


class AioServer:
    """One ``grpc.aio.server`` on a port chosen by the OS, served by a loop in a named thread."""

    def __init__(self, add_servicers: Callable[[grpc.aio.Server], object]) -> None:
        self._add_servicers = add_servicers
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._server: grpc.aio.Server | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="inproc-grpc-loop", daemon=True)

    @classmethod
    def start(cls, add_servicers: Callable[[grpc.aio.Server], object]) -> AioServer:
        """Start a server, call ``add_servicers(server)`` inside its loop, bind port 0; return when serving."""
        server = cls(add_servicers)
        server._thread.start()
        try:
            server.run(server._serve())
        except BaseException:
            server._close_loop()
            raise
        return server

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = START_TIMEOUT_S) -> T:
        """Run ``coro`` on the server's loop and return its result (for set-up and inspection)."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=timeout_s)

    async def _serve(self) -> None:
        # so_reuseport off: a second server must never silently share the port (as in the agent).
        self._server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        self._add_servicers(self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        if not self.port:
            raise RuntimeError("the in-process gRPC server could not bind 127.0.0.1:0")
        await self._server.start()

    def stop(self) -> None:
        """Stop serving (a short grace for open streams), then end the loop and its thread."""
        if self._server is not None:
            server, self._server = self._server, None
            self.run(server.stop(STOP_GRACE_S), timeout_s=STOP_GRACE_S + START_TIMEOUT_S)
        self._close_loop()

    def _close_loop(self) -> None:
        if self.loop.is_closed():
            return
        if self._thread.is_alive():
            self.run(_cancel_the_rest(), timeout_s=START_TIMEOUT_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=START_TIMEOUT_S)
        self.loop.close()


async def _cancel_the_rest() -> None:
    """Cancel what the servicer left running (watch pumps, timers) so the loop closes cleanly."""
    me = asyncio.current_task()
    rest = [t for t in asyncio.all_tasks() if t is not me]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()
