"""The notebook-facing Lab API: start or attach to a lab, read it as tables, poke it.

Synchronous and safe in notebook cells: it never runs an event loop and never installs signal
handlers (the kernel owns both). The lab itself runs under a supervisor daemon in its own
session; this handle only holds a lease on it.

    from runtime import Lab
    lab = Lab.up()                 # start or attach; returns when every service is ready
    lab.status()                   # DataFrame: service, instance, pid, state, restarts, ...
    lab.kill("calculator")         # SIGKILL one calculator instance
    lab.events().tail()            # what the supervisor saw and decided, with reasons
    lab.down()                     # stop everything

``Lab`` owns the processes (through the supervisor); each service's API is a part with its own
methods (``lab.health``, ``lab.logs``, ``lab.load``, ``lab.chaos``, ``lab.config``,
``lab.state``): the map is in ``runtime/lab/__init__.py``. The calculator demo is not part of the
runtime: its helpers live in ``calculator.lab`` over the generic ``lab.run_job``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import pandas as pd

from runtime.client import auth
from runtime.errors import LabError, LabNotRunning, StartupError
from runtime.identity import ENV_LEASE_TTL_MS
from runtime.lab import frames, launcher, startup
from runtime.lab.chaos import Chaos
from runtime.lab.config import Config
from runtime.lab.connection import Connection, message, rpc_error
from runtime.lab.discovery import ServiceWatch
from runtime.lab.events import ProcessEventWatch
from runtime.lab.health import Health
from runtime.lab.jobs import DEFAULT_JOB_TIMEOUT_S, RPC_SLACK_S, JobResult, job_request
from runtime.lab.lease import LEASE_TTL_MS, PERSISTENT_TTL_MS, LeaseKeeper
from runtime.lab.load import Load, LoadTest
from runtime.lab.logs import Logs
from runtime.lab.names import instance_id, signal_name
from runtime.lab.project import LabPaths, resolve
from runtime.lab.reset import ResetReport, reset_lab
from runtime.lab.state import State
from runtime.v1 import broker_pb2, broker_pb2_grpc, supervisor_pb2

RPC_TIMEOUT_S = 5.0
READY_POLL_S = 0.05
DEFAULT_LINGER_S = 30.0
RUNNING = "RUNNING"


class Lab:
    """A handle on one running lab (one supervisor daemon per lab dir), and its parts.

    Use ``Lab.up()`` or ``Lab.attach()`` rather than the constructor.

    Attributes:
        health, logs, load, chaos, config, state: the parts (see the module docstring).
    """

    health: Health
    logs: Logs
    load: Load
    chaos: Chaos
    config: Config
    state: State

    def __init__(self, paths: LabPaths, info: launcher.DaemonInfo, *, persistent: bool = False) -> None:
        self.paths = paths
        self.lab_dir = paths.lab_dir
        self.pid = info.pid
        self.address = info.address
        self.token = info.token  # the lab's token (<lab dir>/token): every call sends it
        self._sup_channel, self._supervisor = launcher.supervisor_stub(info.address, info.token)
        ttl_ms = PERSISTENT_TTL_MS if persistent else int(os.environ.get(ENV_LEASE_TTL_MS, LEASE_TTL_MS))
        self._lease = LeaseKeeper(self._supervisor, holder=f"python pid {os.getpid()}", ttl_ms=ttl_ms)
        self._channels: dict[str, Any] = {}
        self._broker_address = ""
        self._closed = False
        # The parts reach services through this, and nothing else of the Lab.
        conn = Connection(
            channel=self._channel, broker_address=lambda: self.broker_address, lab_dir=self.lab_dir
        )
        self.health = Health(conn)
        self.logs = Logs(conn)
        self.load = Load(conn)
        self.chaos = Chaos(conn)
        self.config = Config(conn)
        self.state = State(conn)

    # -- starting and attaching ------------------------------------------------------------

    @classmethod
    def up(
        cls,
        lab_dir: str | os.PathLike[str] | None = None,
        config: str | os.PathLike[str] | None = None,
        linger_s: float = DEFAULT_LINGER_S,
        timeout_s: float = 30.0,
        *,
        persistent: bool = False,
    ) -> Lab:
        """Start the lab (or attach to the running one) and return when its services are ready.

        Args:
            lab_dir: where the lab keeps its state (default ``.lab`` in the project root).
            config: the lab file (default ``lab.yaml`` in the project root).
            linger_s: how long the lab outlives its last lease (a kernel restart re-attaches).
            timeout_s: how long to wait for every service to be ready.
            persistent: hold the lab until ``down()`` even after this process exits (the CLI's
                ``up``); a notebook leaves it False so a dead kernel never leaves a lab behind.

        Raises:
            StartupError: a service did not become ready; names it with its last log lines and
                says what became of the lab: one this call started is stopped again, one that
                was running already keeps running (see ``startup.failed_up``).

        Example:
            >>> lab = Lab.up()        # doctest: +SKIP
        """
        paths = resolve(lab_dir, config)
        existing = startup.live_handle(paths.lab_dir)
        if existing is not None:
            try:
                existing.wait_ready(timeout_s)
            except StartupError as err:
                raise startup.failed_again(err) from None
            return existing
        info, started = launcher.find_or_spawn(paths.lab_dir, paths.config, linger_s)
        lab = startup.register(cls(paths, info, persistent=persistent))
        try:
            lab.wait_ready(timeout_s)
        except StartupError as err:
            raise startup.failed_up(lab, err, started) from None
        return lab

    @classmethod
    def attach(cls, lab_dir: str | os.PathLike[str] | None = None) -> Lab:
        """Attach to a running lab without starting one.

        Raises:
            LabNotRunning: no daemon answers for that lab dir.
        """
        paths = resolve(lab_dir, None)
        existing = startup.live_handle(paths.lab_dir)
        if existing is not None:
            return existing
        return startup.register(cls(paths, launcher.attach_info(paths.lab_dir)))

    def wait_ready(self, timeout_s: float = 30.0) -> pd.DataFrame:
        """Wait until every service instance is RUNNING; returns the status table.

        Raises:
            StartupError: an instance went FATAL or EXITED for good, or was not ready in time (with its last lines).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            procs = list(self._call("ListProcesses", supervisor_pb2.ListProcessesRequest()).processes)
            if startup.all_ready(procs):
                return frames.status_frame(procs)
            failure = startup.startup_failure(
                procs, timed_out=time.monotonic() > deadline, timeout_s=timeout_s
            )
            if failure is not None:
                instance, reason = failure
                lines = self._last_lines(instance) if instance != startup.NO_PROCESSES else []
                raise StartupError(instance, reason, lines)
            time.sleep(READY_POLL_S)

    # -- reading the lab -------------------------------------------------------------------

    def status(self, service: str | None = None) -> pd.DataFrame:
        """Every process: service, instance, pid, state, restarts, port, uptime_s, cpu_percent, rss_mb."""
        resp = self._call("ListProcesses", supervisor_pb2.ListProcessesRequest(service=service or ""))
        return frames.status_frame(resp.processes)

    def events(self, service: str | None = None, limit: int = 200) -> pd.DataFrame:
        """The supervisor's decisions, oldest first: time, service, instance, pid, event, reason."""
        req = supervisor_pb2.ListProcessEventsRequest(service=service or "")
        evs = list(self._call("ListProcessEvents", req).events)
        return frames.events_frame(evs[-limit:] if limit else evs)

    def watch_events(
        self, callback: Callable[[dict[str, Any]], object], replay: int = 0, service: str | None = None
    ) -> ProcessEventWatch:
        """Call ``callback(event)`` from a background thread for every lifecycle decision; ``.stop()`` ends it.

        ``replay`` past events come first. Each event is a dict with the columns of ``events()``.
        """
        return ProcessEventWatch(lambda: self._sup_channel, callback, replay=replay, service=service or "")

    def watch_services(
        self, callback: Callable[[dict[str, Any]], object], service: str = "", from_revision: int = 0
    ) -> ServiceWatch:
        """Call ``callback(event)`` for every registry change of the broker; ``.stop()`` ends it.

        A snapshot first (``from_revision=0``), or what came after revision R; see ``runtime.lab.discovery``.
        """
        return ServiceWatch(
            lambda: self.broker_address, self.token, callback, service=service, from_revision=from_revision
        )

    def output(self, instance: str, lines: int = 20) -> list[str]:
        """The last captured stdout/stderr lines of one instance."""
        return self._last_lines(instance, lines)

    def lookup(self, service: str, include_unhealthy: bool = False) -> pd.DataFrame:
        """The instances the broker hands out for ``service`` (lab name, gRPC name or short name)."""
        req = message(
            broker_pb2.LookupServiceRequest, f"lookup of {service!r}",
            service_name=service, include_unhealthy=include_unhealthy,
        )  # fmt: skip
        with auth.insecure_channel(self.broker_address, token=self.token) as ch:
            try:
                resp = broker_pb2_grpc.BrokerServiceStub(ch).LookupService(req, timeout=RPC_TIMEOUT_S)
            except grpc.RpcError as err:
                raise rpc_error(err, "broker", f"broker lookup of {service!r}") from err
        return frames.lookup_frame(resp.instances)

    @property
    def broker_address(self) -> str:
        """``127.0.0.1:PORT`` of the broker (it keeps its port across restarts)."""
        if not self._broker_address:
            info = self._call("GetLabInfo", supervisor_pb2.GetLabInfoRequest())
            if not info.broker_address:
                raise LabError(
                    "the lab has no broker address yet; is the broker service running? see lab.status()"
                )
            self._broker_address = info.broker_address
        return self._broker_address

    # -- acting on the lab -----------------------------------------------------------------

    def kill(
        self, service: str, instance: str | int | None = None, signal: str | int = "SIGKILL"
    ) -> dict[str, Any]:
        """Send ``signal`` to one instance of ``service`` (the first running one by default).

        Returns:
            dict with pid, instance and signal of the process that got it.

        Example:
            >>> lab.kill("calculator", 1)            # doctest: +SKIP
            {'pid': 4242, 'instance': 'calculator-1', 'signal': 'SIGKILL'}
        """
        req = message(
            supervisor_pb2.SignalProcessRequest, f"signal to {service!r}",
            service=service, instance_id=instance_id(service, instance), signal=signal_name(signal),
        )  # fmt: skip
        resp = self._call("SignalProcess", req)
        return {"pid": resp.pid, "instance": resp.instance_id, "signal": resp.signal}

    def restart(self, service: str, instance: str | int | None = None) -> pd.DataFrame:
        """Stop and start a service (or one instance) gracefully; a FATAL one starts again afresh."""
        req = _process_request(supervisor_pb2.RestartProcessRequest, "restart", service, instance)
        return frames.status_frame(self._call("RestartProcess", req).processes)

    def reset(self, timeout_s: float = 30.0) -> ResetReport:
        """Back to the lab file's state: no faults, no load, default config, its instances, none FATAL.

        See ``runtime/lab/reset.py`` for the steps. Returns what it did.

        Example:
            >>> print(lab.reset())   # doctest: +SKIP
            reset: 1 faults cleared, 0 load tests stopped, 2 config keys deleted, scaled: calculator 3->2, ...
        """
        return reset_lab(self, timeout_s)

    def stop(self, service: str, instance: str | int | None = None) -> pd.DataFrame:
        """Stop a service (or one instance); it stays stopped until ``start``."""
        req = _process_request(supervisor_pb2.StopProcessRequest, "stop", service, instance)
        return frames.status_frame(self._call("StopProcess", req).processes)

    def start(self, service: str, instance: str | int | None = None) -> pd.DataFrame:
        """Start the stopped instances of a service."""
        req = _process_request(supervisor_pb2.StartProcessRequest, "start", service, instance)
        return frames.status_frame(self._call("StartProcess", req).processes)

    def scale(self, service: str, n: int) -> pd.DataFrame:
        """Run ``n`` instances of ``service``; returns its processes."""
        req = message(
            supervisor_pb2.ScaleServiceRequest, f"scaling {service!r}", service=service, instances=n
        )
        return frames.status_frame(self._call("ScaleService", req).processes)

    def wait_restarted(self, instance: str, old_pid: int, timeout_s: float = 15.0) -> pd.Series:
        """Wait until ``instance`` runs again under a pid other than ``old_pid``; returns its row."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            df = self.status()
            row = df[df.instance == instance]
            if not row.empty and row.iloc[0].state == RUNNING and row.iloc[0].pid not in (None, old_pid):
                return row.iloc[0]
            time.sleep(READY_POLL_S)
        raise StartupError(
            instance, f"was not running again within {timeout_s:.0f} s", self._last_lines(instance)
        )

    def wait_for(
        self, condition: Callable[[], object], timeout_s: float = 10.0, what: str = "condition"
    ) -> None:
        """Poll ``condition`` until it is true (a cell-friendly wait with a timeout).

        Raises:
            TimeoutError: names ``what`` was awaited.
        """
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")
            time.sleep(READY_POLL_S)

    def run_job(
        self, job: str, args: Sequence[str] = (), timeout_s: float = DEFAULT_JOB_TIMEOUT_S
    ) -> JobResult:
        """Run a job of lab.yaml once, with the lab's environment, and wait for it to end.

        Args:
            job: its name under ``jobs:`` in lab.yaml, e.g. ``"client-rust"``.
            args: its command-line arguments (the command itself is the lab file's, never the caller's).
            timeout_s: the supervisor kills it after this long (then ``exit_code`` is negative).

        Returns:
            JobResult with exit_code, stdout, stderr, elapsed_ms, pid, instance.

        Raises:
            ServiceNotFound: lab.yaml has no such job (the message lists the jobs it has).
            ClientError: code ``FAILED_PRECONDITION``: the job cannot run here (a file it
                ``requires:`` is missing, e.g. a client that is not built).
            UsageError: ``args`` is not a list of strings, or ``timeout_s`` is not > 0.

        Example:
            >>> lab.run_job("client-python", ["add", "2", "3"]).exit_code   # doctest: +SKIP
            0
        """
        request = job_request(job, args, timeout_s)
        resp = self._call("RunJob", request, timeout_s=timeout_s + RPC_SLACK_S, what=f"job {job!r}")
        return JobResult.from_response(job, resp)

    # -- flat aliases: the one call a chapter is built around ---------------------------------

    def start_load(self, target: str, rps: int = 100, duration_s: int = 10, **options: Any) -> LoadTest:
        """``lab.load.start(...)``: start a load test (see there for every option).

        ``mode="open"`` (the default) sends on a fixed schedule, ``mode="closed"`` waits for each answer.

        Example:
            >>> test = lab.start_load("calculator", rps=200, duration_s=5)   # doctest: +SKIP
        """
        return self.load.start(target, rps, duration_s, **options)

    def inject(
        self,
        service: str,
        kind: str | int,
        duration_s: int = 0,
        instance: str | int | None = None,
        **params: Any,
    ) -> str:
        """``lab.chaos.inject(...)``: inject a fault, returns its id (see there for every kind).

        Example:
            >>> fid = lab.inject("calculator", "delay", duration_s=30, delay_ms=500)   # doctest: +SKIP
        """
        return self.chaos.inject(service, kind, duration_s, instance, **params)

    def down(self, timeout_s: float = launcher.SHUTDOWN_WAIT_S) -> None:
        """Stop every process of the lab and the daemon; returns when they are gone."""
        self._lease.stop(release=False)
        try:
            self._supervisor.Shutdown(
                supervisor_pb2.ShutdownRequest(reason="lab.down()"), timeout=RPC_TIMEOUT_S
            )
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNAVAILABLE:
                raise
        if not launcher.wait_for_exit(self.pid, timeout_s):
            raise LabError(f"the supervisor (pid {self.pid}) did not stop within {timeout_s:.0f} s")
        self._close_channels()

    def close(self) -> None:
        """Detach: release this handle's lease; the lab lingers, then stops if nobody holds one."""
        if self._closed:
            return
        self._lease.stop(release=True)
        self._close_channels()

    # -- for the parts (through their Connection) -----------------------------------------

    def _channel(self, grpc_service: str) -> Any:
        """A channel to the current instances of ``grpc_service``, found through the broker."""
        ch = self._channels.get(grpc_service)
        if ch is None:
            from runtime.client.discovery import connect

            ch = connect(grpc_service, broker_address=self.broker_address, token=self.token)
            self._channels[grpc_service] = ch
        return ch

    def _call(self, method: str, request: Any, *, timeout_s: float = RPC_TIMEOUT_S, what: str = "") -> Any:
        try:
            return getattr(self._supervisor, method)(request, timeout=timeout_s)
        except grpc.RpcError as err:
            # The supervisor not answering means the lab is gone, not one service: say how to start it.
            if err.code() == grpc.StatusCode.UNAVAILABLE:
                raise LabNotRunning(
                    f"the lab in {self.lab_dir} does not answer (was it stopped?); run Lab.up()"
                ) from err
            raise rpc_error(err, "supervisor", what) from err

    def _last_lines(self, instance: str, lines: int = 15) -> list[str]:
        try:
            req = supervisor_pb2.GetProcessOutputRequest(instance_id=instance, lines=lines)
            resp = self._supervisor.GetProcessOutput(req, timeout=RPC_TIMEOUT_S)
        except grpc.RpcError:
            return []
        return [f"[{ln.stream}] {ln.text}" for ln in resp.lines]

    def _close_channels(self) -> None:
        if self._closed:
            return
        self._closed = True
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()
        self._sup_channel.close()
        startup.forget(self)

    def __repr__(self) -> str:
        return f"<Lab {self.lab_dir} supervisor pid={self.pid} at {self.address}>"


def _process_request(cls: Callable[..., Any], verb: str, service: str, instance: str | int | None) -> Any:
    """A request naming a service and optionally one instance (``1`` means ``<service>-1``)."""
    return message(cls, f"{verb} of {service!r}", service=service, instance_id=instance_id(service, instance))
