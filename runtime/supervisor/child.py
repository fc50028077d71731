"""A child process as the lifecycle sees it: the seam between decisions and real processes.

The lifecycle starts children through a *spawn function* and hears from them only through a
:class:`ChildReport` bound to one run (one generation) of one instance:

    child = await spawn(argv, env, cwd)        # a Child: pid, signal_group(), watch()
    background(child.watch(report))            # report.ready(port, healthy) / .ready_timeout(what)
                                               # / .exited(returncode), each posted to the queue

``runtime.supervisor.process.spawn_child`` is the real spawn function (a process in its own
session, its output, READY line, health check and exit watched). A test passes a fake one
whose children "become ready" and "exit" when the test says, so restart histories are scripted
instead of slept through. Reports of an older generation reach the queue like any other and
are dropped there by the generation check, so a fake can exercise that path too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from runtime.supervisor.output import OutputCallback

if TYPE_CHECKING:
    from runtime.supervisor.instance import Instance

Post = Callable[..., None]  # lifecycle.post(handler, *args)


class Child(Protocol):
    """One started child process."""

    @property
    def pid(self) -> int:
        """Its process id (also its process group id: every child leads its own session)."""

    def signal_group(self, sig: int) -> bool:
        """Send ``sig`` to its whole process group; False if it is already gone."""

    def watch(self, report: ChildReport) -> Awaitable[None]:
        """Follow the child until it exits, telling ``report`` what happens (awaited in the background)."""


Spawn = Callable[[list[str], dict[str, str], str], Awaitable[Child]]
"""``spawn(argv, env, cwd)``: start a child. FileNotFoundError: no such program; OSError: could not start."""


@dataclass(frozen=True)
class ChildReport:
    """How a child's watcher tells the lifecycle what happened, for one run of one instance.

    Every call posts a handler to the lifecycle's queue with ``generation``; the handlers ignore
    reports whose generation is no longer the instance's (a late report of an earlier run).
    """

    inst: Instance
    generation: int
    post: Post
    on_ready: Callable[..., None]
    on_ready_timeout: Callable[..., None]
    on_exit: Callable[..., None]
    on_output: OutputCallback | None = None

    def ready(self, port: int, healthy: bool, http_port: int = 0) -> None:
        """It printed ``READY port=N`` (``http=M``); ``healthy``: grpc.health.v1 confirmed SERVING."""
        self.post(self.on_ready, self.inst, self.generation, port, healthy, http_port)

    def ready_timeout(self, what: str) -> None:
        """It did not become ready in time (``what`` says which part was missing)."""
        self.post(self.on_ready_timeout, self.inst, self.generation, what)

    def exited(self, returncode: int) -> None:
        """It exited (negative: killed by that signal), and its output is drained."""
        self.post(self.on_exit, self.inst, self.generation, returncode)

    def output(self, pid: int, stream: str, ts_ms: int, text: str) -> None:
        """One line of its output: kept in the instance's ring and handed to the log shipper seam."""
        self.inst.output.add(ts_ms, stream, text, pid)
        if self.on_output is not None:
            with contextlib.suppress(Exception):  # the log shipper must never stop the watcher
                self.on_output(self.inst.service, self.inst.instance_id, pid, stream, ts_ms, text)
