"""An HTTP/1.1 server for Connect apps, on a loopback port of its own, in the service's event loop.

    server = ConnectServer(app)
    port = await server.start()      # bound to 127.0.0.1:0; returns the port it got
    ...
    await server.stop()

uvicorn does the HTTP; this class only binds the socket first (so the port is known and checked
before anything is announced, like the gRPC port) and keeps uvicorn away from the process's
signals: the agent or the supervisor already owns SIGTERM and SIGINT, and uvicorn's own handlers
would replace theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
import uvicorn.lifespan.off  # noqa: F401 - what lifespan="off" loads: imported with this module
from uvicorn.protocols.http.h11_impl import H11Protocol

from runtime.identity import LOOPBACK

STOP_GRACE_S = 1  # open watch streams never end by themselves: cut them after this long (whole seconds)
START_TIMEOUT_S = 5.0


class _QuietServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.startup_done = asyncio.Event()  # set once startup() returned (``started``: it serves)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The process's owner (agent or supervisor) handles signals; uvicorn must not take them.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self.startup_done.set()


class ConnectServer:
    """Serves one ASGI app on ``127.0.0.1:<port>`` until ``stop()``."""

    def __init__(self, app: Any, host: str = LOOPBACK) -> None:
        self.host = host
        self.port = 0
        config = uvicorn.Config(
            app,
            lifespan="off",
            http=H11Protocol,  # the class, not "h11": nothing left to import at start()
            ws="none",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=STOP_GRACE_S,
        )
        self._server = _QuietServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Bind, start serving, and return the port once requests are accepted."""
        # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
        # without it every response waits ~40 ms for the client's delayed ACK (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=f"connect:{self.port}")
        started = asyncio.ensure_future(self._server.startup_done.wait())
        try:
            # Woken by startup's end or the server's (a failure), not by polling.
            await asyncio.wait(
                {started, self._task}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            started.cancel()
        where = f"the Connect server on {self.host}:{self.port}"
        if not self._server.started:
            if self._task.done() or self._server.startup_done.is_set():
                # It ended, or is ending, without serving: its task raises what made it fail.
                await asyncio.wait_for(self._task, START_TIMEOUT_S)
                raise RuntimeError(f"{where} stopped before it served")
            raise TimeoutError(f"{where} did not start within {START_TIMEOUT_S:g} s")
        return self.port

    async def stop(self) -> None:
        """Stop accepting, cut open streams after ``STOP_GRACE_S``, and wait for the server."""
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
