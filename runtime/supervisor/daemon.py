"""The supervisor daemon: one per lab directory, guarded by a file lock.

Startup: take ``<lab dir>/supervisor.lock`` (exclusive, non-blocking), serve SupervisorService on
127.0.0.1:0, write ``<lab dir>/supervisor.json`` atomically, then start the services (clients poll
ListProcesses for readiness). It lives while a lease is held; when none has been held for linger_s
(or on Shutdown, SIGTERM, SIGINT) it stops the services in reverse dependency order, removes
supervisor.json, releases the lock and exits 0.

A group keeper (keeper.py) SIGKILLs every lab process group if the daemon itself is killed.

Access: the lab belongs to the user who started it. The daemon runs with umask 077 (its children
inherit it), keeps the lab dir 0700 and its files 0600, and creates the lab's token
(``<lab dir>/token``) before anything starts. The token goes to every child as ``LAB_TOKEN``
(through the daemon's own environment, which ``child_env`` copies) and every RPC of
SupervisorService needs it, like every lab service's (runtime/client/auth.py).

Signals: the daemon is its own process in its own session, so it may own SIGTERM/SIGINT. The
handlers only record the request; the event loop does the work. A second signal forces: every
process group gets SIGKILL at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import importlib
import json
import logging
import os
import secrets
import signal
import stat
import time
from typing import IO, TYPE_CHECKING, Any

import grpc

from runtime.client import malformed
from runtime.client.auth import server_interceptor, token_path
from runtime.identity import (
    ENV_TOKEN,
    INFO_FILE,
    LOCK_FILE,
    LOOPBACK,
    SUPERVISOR_GRPC_SERVICE,
    WEB_SERVICE,
)
from runtime.supervisor import bytecode
from runtime.supervisor.config import LabConfig, resolve_command
from runtime.supervisor.forked import ForkServer, Spawner, python_modules
from runtime.supervisor.forkserver import Launched, discard, forking_enabled
from runtime.supervisor.jobs import JobRunner
from runtime.supervisor.keeper import GroupKeeper
from runtime.supervisor.leases import LeaseTable
from runtime.supervisor.manager import Manager
from runtime.supervisor.metrics import sample_forever
from runtime.supervisor.output import OutputCallback
from runtime.supervisor.process import signal_group
from runtime.supervisor.service import SupervisorServicer, serve_health_and_reflection
from runtime.v1 import supervisor_pb2 as pb
from runtime.v1 import supervisor_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from runtime.connect import ConnectServer

# runtime.connect (uvicorn, connectrpc: ~0.15 s of CPU to import) is imported once the services
# are spawning (``Daemon.run``), so the broker starts that much sooner.

LEASE_SWEEP_S = 0.2
# How often the daemon re-reads supervisor.json and rewrites it if damaged: callers that find it
# unreadable wait for the lock holder (runtime/lab/launcher.py HOLDER_WAIT_S) and then attach.
INFO_CHECK_S = 1.0
SERVER_STOP_GRACE_S = 1.0
# Owner only: other local users must not read the logs, the config or the token, nor drive the lab
# (with runtime.identity.LAB_UMASK, which __main__ sets before anything starts).
DIR_MODE = 0o700
FILE_MODE = 0o600
TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 43 characters, 256 bits

_log = logging.getLogger(__name__)


class LabLocked(Exception):
    """Another supervisor holds the lock of this lab directory."""


def acquire_lock(lab_dir: str) -> IO[str]:
    """Take the lab's exclusive lock (non-blocking) and write our pid into it.

    Raises:
        LabLocked: another supervisor runs for ``lab_dir`` (the message names its pid).
    """
    path = os.path.join(lab_dir, LOCK_FILE)
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the daemon's lifetime
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise LabLocked(f"another supervisor runs for {lab_dir} (pid {holder})") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def secure_lab_dir(lab_dir: str) -> None:
    """Create ``lab_dir`` 0700, or make an existing one 0700 and every file in it 0600.

    A lab dir left by an older version (0755, files 0644) is tightened in place, so its
    logs.sqlite and config of earlier runs stop being readable by other users too.
    """
    os.makedirs(lab_dir, mode=DIR_MODE, exist_ok=True)
    for folder, dirs, files in os.walk(lab_dir):
        os.chmod(folder, DIR_MODE)
        for name in files:
            path = os.path.join(folder, name)
            with contextlib.suppress(FileNotFoundError):  # a file may vanish meanwhile
                if stat.S_ISREG(os.lstat(path).st_mode):
                    os.chmod(path, FILE_MODE)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]


def create_token(lab_dir: str) -> str:
    """A fresh random token for this run of the lab, written to ``<lab dir>/token`` (0600).

    A new token per run: a handle or a stolen copy from an earlier run stops working. Written
    to a temp file created 0600 and renamed, so no reader ever sees a partial or wider file.
    """
    token = secrets.token_urlsafe(TOKEN_BYTES)
    path = token_path(lab_dir)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, FILE_MODE)  # O_CREAT's mode does not apply to a leftover temp file
    os.replace(tmp, path)
    return token


def write_info(lab_dir: str, info: dict[str, Any]) -> str:
    """Write supervisor.json atomically (temp file + rename); returns its path."""
    path = os.path.join(lab_dir, INFO_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(info, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path


def info_intact(lab_dir: str, info: dict[str, Any]) -> bool:
    """True if supervisor.json still says what the daemon wrote (pid and address)."""
    try:
        with open(os.path.join(lab_dir, INFO_FILE), encoding="utf-8") as fh:
            data = json.load(fh)
        return bool(data["pid"] == info["pid"] and data["address"] == info["address"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


class Daemon:
    """Owns the manager, the leases, the jobs and the gRPC server of one lab."""

    def __init__(
        self,
        config: LabConfig,
        *,
        lab_dir: str,
        linger_s: float | None = None,
        on_output: OutputCallback | None = None,
        token: str = "",
        forkserver: Launched | None = None,
    ) -> None:
        self.config = config
        self.lab_dir = os.path.abspath(lab_dir)
        # The lab's token: children inherit it through os.environ (see the module docstring).
        self.token = token or os.environ.get(ENV_TOKEN, "")
        self.pid = os.getpid()
        self.address = ""
        self.connect_address = ""  # the SupervisorService over Connect (HTTP/1.1)
        self.started_at_ms = time.time_ns() // 1_000_000
        # Python services are forked from one pre-imported parent (runtime/supervisor/forked.py).
        commands = [resolve_command(spec.command, config.project_root) for spec in config.services.values()]
        modules = python_modules(commands)
        self.forkserver: ForkServer | None = None
        if forking_enabled() and modules:
            self.forkserver = ForkServer(self.lab_dir, config.project_root, modules, forkserver)
        elif forkserver is not None:  # started early, but this lab has no python -m service
            discard(forkserver)
        self.manager = Manager(
            config, lab_dir=self.lab_dir, on_output=on_output, spawn=Spawner(self.forkserver)
        )
        self.jobs = JobRunner(self.manager)
        self.leases = LeaseTable(config.linger_s if linger_s is None else linger_s, now=time.monotonic())
        self.shutting_down = False
        self._stop_reason = ""
        self._stop = asyncio.Event()
        self._signals = 0

    def request_shutdown(self, reason: str) -> None:
        """Ask the daemon to stop the lab and exit (idempotent)."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self.shutting_down = True
            self.manager.shutting_down = True
            self._stop.set()

    def lease_event(self, reason: str) -> None:
        """Record a lease change in the event log."""
        self.manager.events.emit(service="", instance_id="", kind=pb.PROCESS_EVENT_KIND_LEASE, reason=reason)

    async def run(self) -> int:
        """Serve until shut down; returns the exit code (0)."""
        loop = asyncio.get_running_loop()
        keeper = GroupKeeper(self.lab_dir)
        keeper.start()  # first, before gRPC starts its threads
        self.manager.keeper = keeper
        if self.forkserver is not None:  # it preloads while the daemon sets itself up
            self.forkserver.on_started.append(keeper.add)
            self.forkserver.start_soon()
        manager_task = asyncio.create_task(self.manager.run())
        malformed.install()  # an undecodable request is one log line, not a traceback
        token_check = server_interceptor(self.token, lab_dir=self.lab_dir)
        server = grpc.aio.server(
            interceptors=[token_check] if token_check is not None else None,
            options=[("grpc.so_reuseport", 0)],
        )
        servicer = SupervisorServicer(self)
        pb_grpc.add_SupervisorServiceServicer_to_server(servicer, server)
        health = serve_health_and_reflection(server)  # like every lab service: grpcurl, probes
        port = server.add_insecure_port(f"{LOOPBACK}:0")
        if port == 0:
            raise OSError(
                f"supervisor for {self.lab_dir} could not bind {LOOPBACK}:0; check loopback networking"
            )
        await server.start()
        self.address = f"{LOOPBACK}:{port}"
        self.manager.supervisor_address = self.address
        # The services start now (children need only our gRPC address); Connect and
        # supervisor.json follow while they import. Callers find the lab through supervisor.json.
        started = asyncio.ensure_future(self.manager.call(self.manager.start_all))
        # Imported on a thread: the event loop goes on spawning the services meanwhile.
        await asyncio.to_thread(importlib.import_module, "runtime.connect")
        connect = self._connect_server(servicer)
        self.connect_address = f"{LOOPBACK}:{await connect.start()}"
        for signame in ("SIGTERM", "SIGINT"):
            loop.add_signal_handler(getattr(signal, signame), self._on_signal, signame)
        info = {
            "pid": self.pid,
            "address": self.address,
            "connect_address": self.connect_address,
            "lab_dir": self.lab_dir,
            "config": self.config.path,
            "project_root": self.config.project_root,
            "started_at": self.started_at_ms,
        }
        write_info(self.lab_dir, info)
        self.leases.published(time.monotonic())
        _log.info("supervisor for %s serving on %s", self.lab_dir, self.address)
        helpers = [
            asyncio.create_task(sample_forever(self.manager.select)),
            asyncio.create_task(self._watch_leases()),
            asyncio.create_task(self._keep_info(info)),
            asyncio.create_task(self._write_bytecode()),
        ]
        try:
            await started
            await self._stop.wait()
            _log.info("supervisor for %s shutting down: %s", self.lab_dir, self._stop_reason)
            self.manager.events.emit(
                service="",
                instance_id="",
                kind=pb.PROCESS_EVENT_KIND_STOPPING,
                reason=f"lab shutting down: {self._stop_reason}",
            )
            await self.manager.shutdown()
            self.manager.events.close()
        finally:
            for task in helpers:
                task.cancel()
            await health.enter_graceful_shutdown()
            await server.stop(SERVER_STOP_GRACE_S)
            await connect.stop()
            manager_task.cancel()
            await asyncio.gather(manager_task, *helpers, return_exceptions=True)
            if self.forkserver is not None:  # the services are stopped: their parent may go
                await self.forkserver.close()
            keeper.close()
            try:
                os.remove(os.path.join(self.lab_dir, INFO_FILE))
            except FileNotFoundError:
                pass
            except OSError as exc:  # e.g. someone put a directory there: exit cleanly anyway
                _log.warning("could not remove %s: %s", INFO_FILE, exc)
        return 0

    def _connect_server(self, servicer: SupervisorServicer) -> ConnectServer:
        # The same servicer over Connect, for curl and the lab's web page (runtime/connect).
        from runtime.connect import ConnectServer, connect_app, mount
        from runtime.connect.access import CachedOrigins, guard

        app = connect_app(servicer, pb.DESCRIPTOR.services_by_name["SupervisorService"])
        return ConnectServer(
            guard(
                mount({f"/{SUPERVISOR_GRPC_SERVICE}": app}),
                token=self.token,
                lab_dir=self.lab_dir,
                origins=CachedOrigins(self._web_origins),
            )
        )

    async def _write_bytecode(self) -> None:
        # Off the start-up path: once nothing is starting (or after SETTLE_MAX_S), on a thread.
        deadline = time.monotonic() + bytecode.SETTLE_MAX_S
        while time.monotonic() < deadline and any(
            i.state in (pb.PROCESS_STATE_STARTING, pb.PROCESS_STATE_WAITING) for i in self.manager.select()
        ):
            await asyncio.sleep(bytecode.SETTLE_POLL_S)
        packages = bytecode.python_packages(self.config)
        await asyncio.to_thread(bytecode.compile_packages, self.config.project_root, packages)

    async def _web_origins(self) -> set[str]:
        # The lab's own web page may call over CORS: the origins of its `web` instances.
        from runtime.connect.access import web_origins

        return web_origins(i.http_port for i in self.manager.select() if i.service == WEB_SERVICE)

    def _on_signal(self, signame: str) -> None:
        self._signals += 1
        if self._signals == 1:
            self.request_shutdown(f"received {signame}")
            return
        # Second signal: do not wait for grace periods; the normal shutdown then reaps quickly.
        _log.warning("second %s: killing every lab process now", signame)
        for inst in self.manager.select():
            if inst.alive:
                signal_group(inst.pid, signal.SIGKILL)

    async def _keep_info(self, info: dict[str, Any]) -> None:
        # supervisor.json is how callers find this daemon: if an editor, a full disk or an older
        # version damaged it, write it again, so `up` and `status` attach instead of failing.
        failed = ""
        while not self._stop.is_set():
            await asyncio.sleep(INFO_CHECK_S)
            if self._stop.is_set() or info_intact(self.lab_dir, info):
                continue
            try:
                write_info(self.lab_dir, info)
                _log.warning("%s was damaged or missing; wrote it again", INFO_FILE)
                failed = ""
            except OSError as exc:
                if str(exc) != failed:  # once per distinct problem, not every second
                    _log.warning("%s is damaged and cannot be rewritten: %s", INFO_FILE, exc)
                failed = str(exc)

    async def _watch_leases(self) -> None:
        # A sweep every LEASE_SWEEP_S is cheap and keeps the linger rule in one place.
        while not self._stop.is_set():
            now = time.monotonic()
            for lease in self.leases.expired_now(now):
                self.lease_event(f"lease of {lease.holder} expired (no renewal within {lease.ttl_s:g}s)")
            if self.leases.should_stop(now):
                self.request_shutdown(f"no lease held for {self.leases.linger_s:g}s (linger)")
                return
            await asyncio.sleep(LEASE_SWEEP_S)
