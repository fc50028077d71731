"""The record the manager keeps of one instance (``<service>-<n>``) across its runs, and what it should do.

No processes here: the lifecycle changes these fields on its queue; ``to_info`` shows them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from enum import Enum

from runtime.supervisor.child import Child
from runtime.supervisor.clock import Timer
from runtime.supervisor.config import ServiceSpec
from runtime.supervisor.output import OutputRing
from runtime.supervisor.policy import RestartTracker
from runtime.v1 import supervisor_pb2 as pb


class Desired(Enum):
    """What an instance should be doing; the lifecycle moves its state toward it."""

    RUN = "run"
    STOP = "stop"
    RESTART = "restart"  # stop it, then run it again at once
    REMOVE = "remove"  # stop it, then forget the instance (scale down)


@dataclass
class Instance:
    """What the manager knows about one instance (``<service>-<n>``), across its restarts."""

    spec: ServiceSpec
    index: int
    tracker: RestartTracker
    state: int = pb.PROCESS_STATE_STOPPED
    pid: int = 0
    port: int = 0
    http_port: int = 0  # Connect (HTTP/1.1), from the READY line's http=M; 0: gRPC only
    restarts: int = 0
    started_at_ms: int = 0
    started_mono: float = 0.0
    exit_code: int = 0
    last_exit_reason: str = ""
    next_start_at_ms: int = 0
    healthy: bool = False
    start_failed: bool = False  # START_FAILED already reported for the current run
    desired: Desired = Desired.RUN
    generation: int = 0
    waiting_for: str = ""
    # The liveness probe's verdict (runtime.supervisor.liveness): why it is not responding, or ""
    # when it answers; since when (monotonic).
    not_responding: str = ""
    not_responding_since: float = 0.0
    cpu_percent: float = 0.0
    rss_mb: float = 0.0
    timer: Timer | None = None
    child: Child | None = None  # the current (or last) process; None before the first spawn
    output: OutputRing = field(default_factory=OutputRing)
    settled: list[asyncio.Future[None]] = field(default_factory=list)

    @property
    def service(self) -> str:
        """The service name."""
        return self.spec.name

    @property
    def instance_id(self) -> str:
        """Stable id, e.g. ``calculator-2``."""
        return f"{self.spec.name}-{self.index}"

    @property
    def alive(self) -> bool:
        """A process exists for this instance."""
        return self.state in (pb.PROCESS_STATE_STARTING, pb.PROCESS_STATE_RUNNING, pb.PROCESS_STATE_STOPPING)

    def cancel_timer(self) -> None:
        """Drop a pending restart or kill timer."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def settle(self) -> None:
        """Wake everyone waiting for this instance to stop changing."""
        for fut in self.settled:
            if not fut.done():
                fut.set_result(None)
        self.settled.clear()

    def to_info(self, command: list[str]) -> pb.ProcessInfo:
        """The ProcessInfo message for ListProcesses and friends."""
        up = time.monotonic() - self.started_mono if self.state == pb.PROCESS_STATE_RUNNING else 0.0
        down = time.monotonic() - self.not_responding_since
        live = self.spec.liveness
        return pb.ProcessInfo(
            service=self.service,
            instance_id=self.instance_id,
            pid=self.pid if self.alive else 0,
            state=self.state,  # type: ignore[arg-type]
            restarts=self.restarts,
            port=self.port,
            http_port=self.http_port,
            uptime_s=round(up, 3),
            cpu_percent=self.cpu_percent if self.alive else 0.0,
            rss_mb=self.rss_mb if self.alive else 0.0,
            exit_code=self.exit_code,
            last_exit_reason=self.last_exit_reason,
            next_start_at=self.next_start_at_ms if self.state == pb.PROCESS_STATE_BACKOFF else 0,
            language=self.spec.language,
            command=command,
            started_at=self.started_at_ms,
            liveness=pb.LivenessSettings(
                period_s=live.period_s,
                timeout_s=live.timeout_s,
                failures=live.failures,
                restart_after_s=live.restart_after_s,
            ),
            not_responding=bool(self.not_responding),
            liveness_reason=f"{self.not_responding} for {down:.1f} s" if self.not_responding else "",
        )
