"""The daemon's side of the fork server: Python services forked from a pre-imported parent.

    early = launch(lab_dir, project_root, server_env(lab_dir))   # before the daemon's own imports
    forkserver = ForkServer(lab_dir, project_root, ["runtime.services.broker", ...], early)
    forkserver.start_soon()                       # in the event loop: what to preload, then ready
    spawn = Spawner(forkserver)                   # the lifecycle's spawn function
    child = await spawn(argv, env, cwd)           # forked for `python -m M`, else exec'd
    ...
    await forkserver.close()                      # after the services are stopped

``python -m <module>`` commands run in the daemon's own interpreter, with no ``PYTHON*`` variable
of their own, are forked by the server (runtime/supervisor/forkserver.py); anything else (node,
a binary, a Python with other interpreter settings) is exec'd as before. A forked child is a
:class:`runtime.supervisor.child.Child` like an exec'd one: its own session and pipes, the same
READY / health / output watch; only its exit status comes from the server, which is its parent.

If the server cannot start or dies, the spawn falls back to exec (one warning), and the next
spawn starts a new server; the children of a server that died went with it (parent-death
signal) and are reported killed by SIGKILL. ``LAB_FORKSERVER=0`` turns forking off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable

from runtime.identity import ENV_PYTHONUNBUFFERED
from runtime.supervisor.child import Child, ChildReport
from runtime.supervisor.forkserver import MAX_MESSAGE, Launched, launch, module_of, server_env
from runtime.supervisor.output import LINE_LIMIT
from runtime.supervisor.process import ChildWatch, signal_group, spawn_child

READY_TIMEOUT_S = 30.0  # preloading on a loaded machine; a server slower than this is not used
CLOSE_TIMEOUT_S = 2.0
# PYTHON* variables shape the interpreter at its start; a child that asks for other values than
# the server started with must be exec'd. PYTHONUNBUFFERED the child gets anyway (its streams).
_SAME_AS_SERVER_EXCEPT = (ENV_PYTHONUNBUFFERED,)

_log = logging.getLogger(__name__)


class ForkServerGone(OSError):
    """The fork server is not running (could not start, or exited)."""


def python_modules(commands: list[list[str]]) -> list[str]:
    """The modules of the ``python -m M`` commands among ``commands`` (resolved argv), in order."""
    found: list[str] = []
    for argv in commands:
        module = module_of(argv, sys.executable)
        if module and module not in found:
            found.append(module)
    return found


def _interpreter_env(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("PYTHON") and k not in _SAME_AS_SERVER_EXCEPT}


class ForkServer:
    """One fork server process for the daemon: started once, restarted on the next spawn if gone."""

    def __init__(
        self,
        lab_dir: str,
        project_root: str,
        modules: list[str],
        launched: Launched | None = None,
    ) -> None:
        self.lab_dir = lab_dir
        self.project_root = project_root
        self.modules = modules
        self.pid = 0
        self.on_started: list[Callable[[int], None]] = []  # called with its pid: the group keeper
        self._env = server_env(lab_dir)
        self._proc: subprocess.Popen[bytes] | None = None
        self._launched = launched  # started before the daemon's imports (runtime/supervisor/__main__.py)
        self._sock: socket.socket | None = None
        self._starting: asyncio.Task[None] | None = None
        self._next_id = 0
        self._spawns: dict[int, asyncio.Future[tuple[int, asyncio.Future[int]]]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._closed = False

    def can_fork(self, argv: list[str], env: dict[str, str], cwd: str) -> bool:
        """True if ``argv`` may be forked: ``python -m`` of ours, same root, same interpreter env."""
        return (
            not self._closed
            and bool(module_of(argv, sys.executable))
            and os.path.realpath(cwd) == os.path.realpath(self.project_root)
            and _interpreter_env(env) == _interpreter_env(self._env)
        )

    def start_soon(self) -> None:
        """Start the server in the background (it preloads while the daemon sets itself up)."""
        if self._starting is None or (self._starting.done() and self._sock is None):
            self._starting = asyncio.ensure_future(self._start())

    async def ready(self) -> None:
        """Wait until the server is serving; ForkServerGone if it could not start."""
        self.start_soon()
        assert self._starting is not None
        await asyncio.shield(self._starting)
        if self._sock is None:
            raise ForkServerGone("the fork server is not running")

    async def _start(self) -> None:
        launched, self._launched = self._launched, None
        if launched is None:
            try:
                launched = launch(self.lab_dir, self.project_root, self._env)
            except OSError as exc:
                _log.warning("fork server could not start (%s); services are exec'd", exc)
                return
        proc, ours = launched
        ours.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_sendall(ours, json.dumps({"op": "preload", "modules": self.modules}).encode())
            first = await asyncio.wait_for(loop.sock_recv(ours, MAX_MESSAGE), READY_TIMEOUT_S)
            hello = json.loads(first) if first else {}
        except (TimeoutError, OSError, ValueError):
            hello = {}
        if hello.get("op") != "ready":
            ours.close()
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.to_thread(proc.wait)
            _log.warning("fork server did not become ready; services are exec'd")
            return
        if hello.get("failed"):
            _log.warning("fork server could not preload %s", hello["failed"])
        self._proc, self._sock, self.pid = proc, ours, proc.pid
        for callback in self.on_started:
            callback(proc.pid)
        loop.add_reader(ours, self._on_readable)

    def _on_readable(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            try:
                data = sock.recv(MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._gone()
                return
            self._on_message(json.loads(data))

    def _on_message(self, msg: dict) -> None:
        op = msg.get("op")
        if op == "spawned":
            future = self._spawns.pop(msg["id"], None)
            if "pid" in msg:
                pid = int(msg["pid"])
                exited = self._exits[pid] = asyncio.get_running_loop().create_future()
                if future is not None and not future.done():
                    future.set_result((pid, exited))
            elif future is not None and not future.done():
                future.set_exception(OSError(f"fork server: {msg.get('error', 'spawn failed')}"))
        elif op == "exited":
            waiter = self._exits.pop(int(msg["pid"]), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(int(msg["returncode"]))

    def _gone(self) -> None:
        # The server exited: its children died with it (parent-death signal, SIGKILL).
        if self._sock is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._sock)
            self._sock.close()
        self._sock = None
        if not self._closed:
            _log.warning("fork server (pid %s) exited; the next Python service start restarts it", self.pid)
        if self._proc is not None and not self._closed:  # reap it (it is our child) off the loop
            asyncio.get_running_loop().run_in_executor(None, self._proc.wait)
        for future in self._spawns.values():
            if not future.done():
                future.set_exception(ForkServerGone("the fork server exited"))
        for waiter in self._exits.values():
            if not waiter.done():
                waiter.set_result(-signal.SIGKILL)
        self._spawns.clear()
        self._exits.clear()
        self.pid = 0

    async def spawn(self, argv: list[str], env: dict[str, str], cwd: str) -> ForkedChild:
        """Fork ``argv`` (a ``python -m`` command) with its own pipes; ForkServerGone if no server."""
        await self.ready()
        sock = self._sock
        assert sock is not None
        loop = asyncio.get_running_loop()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            self._next_id += 1
            request_id = self._next_id
            future: asyncio.Future[tuple[int, asyncio.Future[int]]] = loop.create_future()
            self._spawns[request_id] = future
            message = json.dumps({"op": "spawn", "id": request_id, "argv": argv, "env": env, "cwd": cwd})
            try:
                socket.send_fds(sock, [message.encode()], [out_w, err_w])
            except OSError as exc:
                self._spawns.pop(request_id, None)
                raise ForkServerGone(f"the fork server does not listen: {exc}") from exc
        finally:
            os.close(out_w)
            os.close(err_w)
        try:
            pid, exited = await future
        except BaseException:
            os.close(out_r)
            os.close(err_r)
            raise
        stdout = await _reader(loop, out_r)
        stderr = await _reader(loop, err_r)
        return ForkedChild(pid, stdout, stderr, exited)

    async def close(self) -> None:
        """Close the control socket: the server exits (after the services have stopped)."""
        self._closed = True
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        self._gone()
        if self._launched is not None:  # launched early, never started (e.g. no Python service)
            self._launched[1].close()
            self._proc, self._launched = self._launched[0], None
        if self._proc is not None:
            try:
                await asyncio.to_thread(self._proc.wait, CLOSE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                await asyncio.to_thread(self._proc.wait)


async def _reader(loop: asyncio.AbstractEventLoop, fd: int) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=LINE_LIMIT, loop=loop)
    pipe = os.fdopen(fd, "rb", buffering=0)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), pipe)
    return reader


class ForkedChild:
    """A forked service (:class:`runtime.supervisor.child.Child`), leading its own process group."""

    def __init__(
        self,
        pid: int,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
        exited: asyncio.Future[int],
    ) -> None:
        self.pid = pid
        self._stdout = stdout
        self._stderr = stderr
        self._exited = exited

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the child's process group; False if it is already gone."""
        return signal_group(self.pid, sig)

    async def watch(self, report: ChildReport) -> None:
        """Follow output, READY, health and exit (see :class:`ChildWatch`)."""
        await ChildWatch(self.pid, self._stdout, self._stderr, self._exit_status, report).run()

    async def _exit_status(self) -> int:
        returncode = await asyncio.shield(self._exited)
        # As for an exec'd child: helpers it started go with it, so its pipes close.
        signal_group(self.pid, signal.SIGKILL)
        return returncode


class Spawner:
    """The lifecycle's spawn function: fork ``python -m`` services, exec everything else."""

    def __init__(self, forkserver: ForkServer | None) -> None:
        self.forkserver = forkserver

    async def __call__(self, argv: list[str], env: dict[str, str], cwd: str) -> Child:
        server = self.forkserver
        if server is not None and server.can_fork(argv, env, cwd):
            try:
                return await server.spawn(argv, env, cwd)
            except ForkServerGone as exc:
                _log.warning("%s; exec'ing %s", exc, " ".join(argv[1:3]))
        return await spawn_child(argv, env, cwd)
