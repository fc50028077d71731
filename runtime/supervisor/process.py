"""One real lab process: spawning it and watching it until exit (the lifecycle's real ``spawn``).

A child runs in its own session (own process group, so a notebook's Ctrl-C never reaches it and
the group can be signalled as a whole) under ``setpriv --pdeathsig KILL``: the kernel SIGKILLs it
when the thread that forked it dies. PR_SET_PDEATHSIG is per *thread*, so ``spawn`` must be
called from the daemon's main (event-loop) thread, which lives as long as the daemon. setpriv
also keeps Python code out of the forked child (gRPC + fork is fragile).

Exit is detected by waiting on the child (asyncio's child watcher), never by polling.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from runtime.identity import ENV_NICE, LOOPBACK, parse_ready_http, parse_ready_line
from runtime.supervisor.child import ChildReport
from runtime.supervisor.forkserver import with_parent_death
from runtime.supervisor.instance import Desired, Instance
from runtime.supervisor.output import LINE_LIMIT, read_lines

NICE = shutil.which("nice")
HEALTH_RPC_TIMEOUT_S = 0.5
HEALTH_RETRY_S = 0.05
# After the child exits, how long to wait for its pipes to drain (a grandchild may hold them).
DRAIN_S = 0.2
# After the exit (seen on a pidfd), how long to wait for asyncio's child watcher to reap it.
REAP_WAIT_S = 2.0
REAP_POLL_S = 0.01

# Instance and Desired moved to runtime.supervisor.instance; kept importable from here.
__all__ = [
    "ChildWatch",
    "Desired",
    "Instance",
    "ProcessChild",
    "check_serving",
    "describe_exit",
    "signal_group",
    "spawn",
    "spawn_child",
]


def describe_exit(returncode: int) -> str:
    """'exited with code 1' or 'killed by SIGKILL' for an asyncio/subprocess return code."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to process group ``pgid``; False if it is already gone."""
    if pgid <= 0:
        return False
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


async def spawn(argv: list[str], *, env: dict[str, str], cwd: str) -> asyncio.subprocess.Process:
    """Start ``argv`` in its own session with the parent-death signal armed (main thread only)."""
    if env.get(ENV_NICE) and NICE:  # lab.yaml's nice: exec'd through nice(1), under setpriv
        argv = [NICE, "-n", env[ENV_NICE], *argv]
    return await asyncio.create_subprocess_exec(
        *with_parent_death(argv),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=env,
        start_new_session=True,
        limit=LINE_LIMIT,
    )


async def check_serving(port: int, timeout_s: float = HEALTH_RPC_TIMEOUT_S) -> bool:
    """One grpc.health.v1 Check(service="") against 127.0.0.1:port; True if SERVING."""
    async with grpc.aio.insecure_channel(f"{LOOPBACK}:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.aio.AioRpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


async def exit_status(proc: asyncio.subprocess.Process) -> int:
    """The child's exit status as soon as the kernel reports the exit.

    ``Process.wait()`` (Python 3.11) also waits until every pipe to the child is closed, and a
    process the child started without redirecting its output holds them: the exit would go
    unseen (no event, no restart) for as long as that helper lives. So the exit is learnt from
    a pidfd; then the child's group is killed, as ``Lifecycle._on_exit`` does anyway (the
    helpers go with the service and the pipes close), and the status is the one asyncio's
    child watcher reaped.
    """
    try:
        pidfd = os.pidfd_open(proc.pid)
    except OSError:  # already reaped, or a kernel without pidfds: the plain wait
        return await proc.wait()
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[int] = loop.create_future()  # the value is unused: readable = exited

    def on_readable() -> None:
        if not exited.done():
            exited.set_result(0)

    loop.add_reader(pidfd, on_readable)
    waiter = asyncio.ensure_future(proc.wait())
    try:
        await asyncio.wait({waiter, exited}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        waiter.cancel()
        raise
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    if not waiter.done():
        signal_group(proc.pid, signal.SIGKILL)
        # A helper that left the group (its own session) may hold the pipes for good: then
        # take the status the child watcher recorded when it reaped the child (a bounded poll:
        # asyncio offers no event for "reaped" apart from the wait that the pipes block).
        deadline = time.monotonic() + REAP_WAIT_S
        while not waiter.done() and proc.returncode is None and time.monotonic() < deadline:
            await asyncio.wait({waiter}, timeout=REAP_POLL_S)
    if waiter.done():
        return waiter.result()
    waiter.cancel()
    return proc.returncode if proc.returncode is not None else -signal.SIGKILL


class ChildWatch:
    """Watches one spawned child: its output, its READY line and health, and its exit.

    Everything it learns goes to ``report`` (a :class:`ChildReport` bound to this run), which
    posts it to the lifecycle's queue.
    """

    def __init__(
        self,
        pid: int,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
        exit_status: Callable[[], Awaitable[int]],
        report: ChildReport,
    ) -> None:
        self.pid = pid
        self.stdout = stdout
        self.stderr = stderr
        self.exit_status = exit_status  # the return code once the kernel reports the exit
        self.report = report
        self._ready_port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._http_port = 0

    async def run(self) -> None:
        """Watch until the child exits and its output is drained, then report the exit."""
        readers = [
            asyncio.create_task(read_lines(self.stdout, "stdout", self._line)),
            asyncio.create_task(read_lines(self.stderr, "stderr", self._line)),
        ]
        ready = asyncio.create_task(self._become_ready())
        try:
            returncode = await self.exit_status()
        finally:
            ready.cancel()
        _, pending = await asyncio.wait(readers, timeout=DRAIN_S)
        for task in pending:
            task.cancel()
        self.report.exited(returncode)

    def _line(self, stream: str, ts_ms: int, text: str) -> None:
        if stream == "stdout" and not self._ready_port.done():
            port = parse_ready_line(text)
            if port is not None:
                self._http_port = parse_ready_http(text) or 0
                self._ready_port.set_result(port)
        self.report.output(self.pid, stream, ts_ms, text)

    async def _become_ready(self) -> None:
        spec = self.report.inst.spec
        deadline = time.monotonic() + spec.ready_timeout_s
        try:
            async with asyncio.timeout(spec.ready_timeout_s):
                port = await self._ready_port
                if spec.health_check:
                    while not await check_serving(port):
                        await asyncio.sleep(HEALTH_RETRY_S)
        except TimeoutError:
            # The timeout cancels the future when no READY line came.
            got_ready = self._ready_port.done() and not self._ready_port.cancelled()
            what = "READY but grpc.health.v1 not SERVING" if got_ready else "no READY line"
            self.report.ready_timeout(f"{what} within {spec.ready_timeout_s:g}s")
            return
        healthy = spec.health_check
        self.report.ready(port, healthy, self._http_port)
        if not healthy and time.monotonic() < deadline:
            # Not confirmed by policy, but `depends_on: healthy` may want to know.
            if await check_serving(port):
                self.report.ready(port, True, self._http_port)


class ProcessChild:
    """A real child (:class:`runtime.supervisor.child.Child`): an OS process leading its own group."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @property
    def pid(self) -> int:
        """The process id, also its process group id."""
        return self.proc.pid

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to the child's process group; False if it is already gone."""
        return signal_group(self.proc.pid, sig)

    async def watch(self, report: ChildReport) -> None:
        """Follow output, READY, health and exit (see :class:`ChildWatch`)."""
        assert self.proc.stdout is not None and self.proc.stderr is not None
        await ChildWatch(self.proc.pid, self.proc.stdout, self.proc.stderr, self._exit_status, report).run()

    async def _exit_status(self) -> int:
        return await exit_status(self.proc)


async def spawn_child(argv: list[str], env: dict[str, str], cwd: str) -> ProcessChild:
    """The real spawn function of the lifecycle (``runtime.supervisor.child.Spawn``).

    Raises:
        FileNotFoundError: ``argv[0]`` is neither a path that exists nor on PATH (checked first:
            under setpriv a missing program would only show as an exit code).
        OSError: the process could not be started.
    """
    if not os.path.exists(argv[0]) and not shutil.which(argv[0]):
        raise FileNotFoundError(errno.ENOENT, "command not found", argv[0])
    return ProcessChild(await spawn(argv, env=env, cwd=cwd))
