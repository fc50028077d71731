"""How instances move between states, driven by one event queue.

Everything that changes an instance (a child became ready or exited, a restart timer fired, an
RPC asked to stop something) is a handler posted to the queue; ``run()`` executes them one at a
time. Handlers never wait for another handler, so the queue cannot deadlock: long waits (a
stop's grace period, a health check) happen in tasks or timers that post their result back.

    WAITING --deps met--> STARTING --READY(+health)--> RUNNING --exit--> BACKOFF --delay--> STARTING
       STARTING --exit/timeout--> START_FAILED event, then the policy: BACKOFF | EXITED | FATAL
       any live state --stop--> STOPPING --exit--> STOPPED
       a start whose ``requires`` is missing --> SKIPPED (until a start finds it installed)

Two seams keep decisions apart from processes and time (honcho's manager tests work the same
way): ``spawn`` starts a child and returns a :class:`runtime.supervisor.child.Child` whose
watcher reports READY and exit through a :class:`ChildReport`; ``clock`` gives monotonic and
wall time and schedules the restart and grace timers. The daemon uses the real ones
(``process.spawn_child``, ``clock.LoopClock``); tests/test_lifecycle_scripted.py passes fakes and
scripts exit histories without children or sleeps.

:class:`runtime.supervisor.manager.Manager` adds the lab-wide commands on top.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from runtime import identity as ident
from runtime.supervisor.broker_link import BrokerLink
from runtime.supervisor.child import ChildReport, Spawn
from runtime.supervisor.clock import Clock, LoopClock
from runtime.supervisor.config import LabConfig, ServiceSpec, missing_requirement, resolve_command
from runtime.supervisor.events import EventLog
from runtime.supervisor.instance import Desired, Instance
from runtime.supervisor.keeper import GroupKeeper
from runtime.supervisor.liveness import LivenessKeeper
from runtime.supervisor.output import OutputCallback
from runtime.supervisor.policy import Action, RestartTracker
from runtime.supervisor.process import describe_exit, spawn_child
from runtime.v1 import supervisor_pb2 as pb

BROKER_SERVICE = "broker"
FAILURE_TAIL_LINES = 8

_log = logging.getLogger(__name__)
_K = pb  # event kinds and states live in the generated module


class Lifecycle:
    """The instances of a lab, their state transitions and the queue that serializes them.

    Args:
        config: the lab.
        lab_dir: the lab directory (given to every child).
        on_output: called with every output line of every child (the log shipper's seam).
        spawn: starts a child (default: a real process, ``process.spawn_child``).
        clock: time and timers (default: ``LoopClock``, the running asyncio loop).
        liveness: probe RUNNING children with grpc.health.v1 (fake children have nothing to probe).
    """

    def __init__(
        self,
        config: LabConfig,
        *,
        lab_dir: str,
        on_output: OutputCallback | None = None,
        spawn: Spawn = spawn_child,
        clock: Clock | None = None,
        liveness: bool = True,
    ) -> None:
        self.config = config
        self.clock: Clock = clock if clock is not None else LoopClock()
        self._spawn_child = spawn
        self._probe_liveness = liveness
        self.lab_dir = os.path.abspath(lab_dir)
        self.events = EventLog()
        self.on_output = on_output
        self.supervisor_address = ""
        self.broker_address = ""
        self.shutting_down = False
        self.instances: dict[str, dict[str, Instance]] = {name: {} for name in config.services}
        self._queue: asyncio.Queue[tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any] | None]]
        self._queue = asyncio.Queue()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._broker = BrokerLink()
        self.keeper: GroupKeeper | None = None  # the daemon sets it; None in embedded use
        self.liveness = LivenessKeeper(post=self.post, emit=self._emit, background=self._background)
        for spec in config.services.values():
            for index in range(1, spec.instances + 1):
                self._add_instance(spec, index)

    # -- the queue ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Execute posted handlers one at a time, forever (cancel to stop)."""
        while True:
            handler, args, fut = await self._queue.get()
            try:
                result = handler(*args)
                if asyncio.iscoroutine(result):
                    result = await result
            except Exception as exc:
                if fut is not None and not fut.done():
                    fut.set_exception(exc)
                else:
                    _log.exception("supervisor handler %s failed", getattr(handler, "__name__", handler))
                continue
            if fut is not None and not fut.done():
                fut.set_result(result)

    def post(self, handler: Callable[..., Any], *args: Any) -> None:
        """Queue ``handler(*args)`` for the manager loop (fire and forget)."""
        self._queue.put_nowait((handler, args, None))

    async def call(self, handler: Callable[..., Any], *args: Any) -> Any:
        """Queue ``handler(*args)`` and wait for its result (exceptions propagate)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((handler, args, fut))
        return await fut

    async def drain(self) -> None:
        """Wait until the queue is empty: every handler posted so far, and all they posted, ran.

        For tests that script a history: post, drain, look. (``run()`` must be running.)
        """
        await self.call(_nothing)  # behind whatever handler runs now
        while not self._queue.empty():
            await self.call(_nothing)

    def _background(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def child_env(
        self, service: str, instance_id: str, language: str, extra: dict[str, str]
    ) -> dict[str, str]:
        """The environment contract of runtime.identity, plus the service's own env."""
        env = dict(os.environ)
        env.update(
            {
                ident.ENV_LAB_DIR: self.lab_dir,
                ident.ENV_SERVICE: service,
                ident.ENV_INSTANCE: instance_id,
                ident.ENV_BROKER_ADDR: "" if service == BROKER_SERVICE else self.broker_address,
                ident.ENV_SUPERVISOR_ADDR: self.supervisor_address,
                ident.ENV_SUPERVISOR_PID: str(os.getpid()),
                ident.ENV_PORT: "0",
                ident.ENV_PORT_STRICT: "0",
                ident.ENV_LANGUAGE: language,
                ident.ENV_PYTHONUNBUFFERED: "1",
            }
        )
        env.update(extra)
        return env

    # -- transitions -------------------------------------------------------------------------

    def _add_instance(self, spec: ServiceSpec, index: int) -> Instance:
        inst = Instance(spec=spec, index=index, tracker=RestartTracker(spec))
        self.instances[spec.name][inst.instance_id] = inst
        return inst

    def _emit(self, inst: Instance, kind: int, reason: str, **fields: Any) -> None:
        self.events.emit(
            service=inst.service, instance_id=inst.instance_id, kind=kind, reason=reason, **fields
        )

    def _request_start(self, inst: Instance, *, manual: bool) -> None:
        if self.shutting_down:
            return
        inst.cancel_timer()
        inst.desired = Desired.RUN
        if manual:
            inst.tracker.reset()
        missing = missing_requirement(inst.spec.requires, self.config.project_root)
        if missing:
            inst.state = _K.PROCESS_STATE_SKIPPED
            inst.last_exit_reason = f"{missing} not found; install it to run this service"
            self._emit(
                inst, _K.PROCESS_EVENT_KIND_STOPPED, f"{inst.instance_id} skipped: {inst.last_exit_reason}"
            )
            inst.settle()
            return
        unmet = self._unmet_dependencies(inst.spec)
        if unmet:
            if inst.state != _K.PROCESS_STATE_WAITING or inst.waiting_for != unmet:
                inst.state = _K.PROCESS_STATE_WAITING
                inst.waiting_for = unmet
                self._emit(inst, _K.PROCESS_EVENT_KIND_WAITING, f"waiting for {unmet}")
            return
        self.post(self._spawn, inst)
        inst.state = _K.PROCESS_STATE_STARTING  # reserved; _spawn fills in the pid

    def _unmet_dependencies(self, spec: ServiceSpec) -> str:
        unmet = []
        for dep, cond in spec.depends_on.items():
            insts = self.instances.get(dep, {}).values()
            if cond == "started":
                ok = any(
                    i.state in (_K.PROCESS_STATE_STARTING, _K.PROCESS_STATE_RUNNING) and i.pid for i in insts
                )
                # A dependent of the broker needs its address: known at spawn for a sticky port,
                # else only once it is READY.
                ok = ok and (dep != BROKER_SERVICE or bool(self.broker_address))
            elif cond == "ready":
                ok = any(i.state == _K.PROCESS_STATE_RUNNING for i in insts)
            else:
                ok = any(i.state == _K.PROCESS_STATE_RUNNING and i.healthy for i in insts)
            if not ok:
                unmet.append(f"{dep} to be {cond}")
        return ", ".join(unmet)

    def _wake_waiting(self) -> None:
        for inst in [i for group in self.instances.values() for i in group.values()]:
            if inst.state == _K.PROCESS_STATE_WAITING and inst.desired is Desired.RUN:
                self._request_start(inst, manual=False)

    async def _spawn(self, inst: Instance) -> None:
        if inst.desired is Desired.RESTART:  # a restart requested before this spawn ran: just run it
            inst.desired = Desired.RUN
        if inst.desired is not Desired.RUN or self.shutting_down:
            self._stopped(inst, "stopped before it ran")
            return
        spec = inst.spec
        root = self.config.project_root
        argv = resolve_command(spec.command, root)
        extra = dict(spec.env)
        if spec.sticky_port and not inst.port:
            # Chosen before the first start, so the address is known while the process is still
            # importing: the broker's dependents (`depends_on: {broker: started}`) spawn beside it
            # and their agents wait for it to answer before they print READY.
            inst.port = free_port()
        if spec.sticky_port and inst.port:
            extra = {ident.ENV_PORT: str(inst.port), ident.ENV_PORT_STRICT: "1", **extra}
        if spec.nice:  # the spawner (fork or exec) starts it that much nicer
            extra = {ident.ENV_NICE: str(spec.nice), **extra}
        env = self.child_env(spec.name, inst.instance_id, spec.language, extra)
        try:
            child = await self._spawn_child(argv, env, root)
        except FileNotFoundError:
            reason = f"{inst.instance_id} could not start: command {spec.command[0]!r} not found (not on PATH, not under {root}); install it or fix services.{spec.name}.command"
            self._fatal(inst, reason, _K.PROCESS_EVENT_KIND_START_FAILED)
            return
        except OSError as exc:
            self._fatal(
                inst,
                f"{inst.instance_id} could not start {argv[0]}: {exc}",
                _K.PROCESS_EVENT_KIND_START_FAILED,
            )
            return
        if self.keeper is not None:
            self.keeper.add(child.pid)
        inst.generation += 1
        inst.child = child
        inst.pid = child.pid
        inst.state = _K.PROCESS_STATE_STARTING
        inst.healthy = False
        inst.start_failed = False
        inst.waiting_for = ""
        inst.started_at_ms = self.clock.wall_ms()
        inst.started_mono = self.clock.monotonic()
        inst.tracker.record_start(inst.started_mono)
        if inst.service == BROKER_SERVICE and spec.sticky_port:
            self.broker_address = f"{ident.LOOPBACK}:{inst.port}"
        report = ChildReport(
            inst,
            inst.generation,
            self.post,
            on_ready=self._on_ready,
            on_ready_timeout=self._on_ready_timeout,
            on_exit=self._on_exit,
            on_output=self.on_output,
        )
        self._background(child.watch(report))
        self._emit(
            inst,
            _K.PROCESS_EVENT_KIND_SPAWNED,
            f"spawned pid {child.pid}: {' '.join(spec.command)}",
            pid=child.pid,
        )
        self._wake_waiting()

    def _on_ready(
        self, inst: Instance, generation: int, port: int, healthy: bool, http_port: int = 0
    ) -> None:
        if generation != inst.generation or inst.state not in (
            _K.PROCESS_STATE_STARTING,
            _K.PROCESS_STATE_RUNNING,
        ):
            return
        inst.healthy = inst.healthy or healthy
        if inst.state == _K.PROCESS_STATE_RUNNING:
            self._wake_waiting()  # a late health confirmation
            return
        inst.state = _K.PROCESS_STATE_RUNNING
        inst.port = port
        inst.http_port = http_port
        if self._probe_liveness:
            self.liveness.watch(inst)
        if inst.service == BROKER_SERVICE:
            self.broker_address = f"{ident.LOOPBACK}:{port}"
            self._broker.connect(self.broker_address)
        how = " (grpc.health.v1 SERVING)" if healthy else ""
        self._emit(inst, _K.PROCESS_EVENT_KIND_READY, f"ready on port {port}{how}", pid=inst.pid)
        self._wake_waiting()

    def _on_ready_timeout(self, inst: Instance, generation: int, what: str) -> None:
        if generation != inst.generation or inst.state != _K.PROCESS_STATE_STARTING:
            return
        inst.start_failed = True
        lines = inst.output.last_text(FAILURE_TAIL_LINES, inst.pid)
        reason = f"{inst.instance_id}: {what}; killing it" + _tail(lines)
        self._emit(inst, _K.PROCESS_EVENT_KIND_START_FAILED, reason, pid=inst.pid)
        _signal_group(inst, signal.SIGKILL)

    def _terminate(self, inst: Instance, why: str) -> None:
        inst.cancel_timer()
        inst.state = _K.PROCESS_STATE_STOPPING
        _signal_group(inst, signal.SIGTERM)
        grace = inst.spec.stop_grace_s
        self._emit(
            inst, _K.PROCESS_EVENT_KIND_STOPPING, f"{why}: SIGTERM, SIGKILL after {grace:g}s", pid=inst.pid
        )
        inst.timer = self.clock.call_later(grace, self.post, self._kill_after_grace, inst, inst.generation)

    def _kill_after_grace(self, inst: Instance, generation: int) -> None:
        if generation == inst.generation and inst.state == _K.PROCESS_STATE_STOPPING:
            self._emit(
                inst, _K.PROCESS_EVENT_KIND_SIGNALED, "grace period over: SIGKILL", pid=inst.pid, signal=9
            )
            _signal_group(inst, signal.SIGKILL)

    def _on_exit(self, inst: Instance, generation: int, returncode: int) -> None:
        if generation != inst.generation:
            return
        inst.cancel_timer()
        pid = inst.pid
        _signal_group(inst, signal.SIGKILL)  # grandchildren left in the group go with it
        if self.keeper is not None:
            self.keeper.remove(pid)
        was_starting = inst.state == _K.PROCESS_STATE_STARTING and not inst.start_failed
        reason = describe_exit(returncode)
        inst.exit_code = returncode
        inst.last_exit_reason = reason
        inst.healthy = False
        sig = -returncode if returncode < 0 else 0
        self._report_exit(inst, pid, reason)
        if inst.desired is not Desired.RUN or self.shutting_down:
            self._stopped(inst, f"{reason} after stop request", pid=pid, exit_code=returncode, signal=sig)
            if inst.desired is Desired.REMOVE:
                del self.instances[inst.service][inst.instance_id]
            elif inst.desired is Desired.RESTART and not self.shutting_down:
                inst.restarts += 1
                self._request_start(inst, manual=True)
            return
        if was_starting:
            lines = inst.output.last_text(FAILURE_TAIL_LINES, pid)
            text = f"{inst.instance_id} {reason} before READY" + _tail(lines)
            self._emit(
                inst, _K.PROCESS_EVENT_KIND_START_FAILED, text, pid=pid, exit_code=returncode, signal=sig
            )
        else:
            self._emit(inst, _K.PROCESS_EVENT_KIND_EXITED, reason, pid=pid, exit_code=returncode, signal=sig)
        self._apply_policy(inst, returncode)

    def _apply_policy(self, inst: Instance, returncode: int) -> None:
        decision = inst.tracker.decide(exit_code=returncode, now=self.clock.monotonic())
        if decision.action is Action.RESTART:
            inst.state = _K.PROCESS_STATE_BACKOFF
            inst.next_start_at_ms = self.clock.wall_ms() + int(decision.delay_s * 1000)
            self._emit(
                inst,
                _K.PROCESS_EVENT_KIND_RESTART_SCHEDULED,
                f"{inst.instance_id} restarts in {decision.delay_s:g}s",
                rule=decision.rule,
                next_attempt_at=inst.next_start_at_ms,
                pid=inst.pid,
                exit_code=returncode,
            )
            inst.timer = self.clock.call_later(
                decision.delay_s, self.post, self._restart_due, inst, inst.generation
            )
        elif decision.action is Action.EXIT:
            inst.state = _K.PROCESS_STATE_EXITED
            self._emit(
                inst,
                _K.PROCESS_EVENT_KIND_EXITED,
                f"{inst.instance_id} {inst.last_exit_reason}",
                rule=decision.rule,
                exit_code=returncode,
            )
            inst.settle()
        else:
            self._fatal(
                inst,
                f"{inst.instance_id} {inst.last_exit_reason}; {decision.rule}",
                _K.PROCESS_EVENT_KIND_FATAL,
                rule=decision.rule,
            )

    def _restart_due(self, inst: Instance, generation: int) -> None:
        if (
            generation == inst.generation
            and inst.state == _K.PROCESS_STATE_BACKOFF
            and inst.desired is Desired.RUN
        ):
            inst.timer = None
            inst.restarts += 1
            self._request_start(inst, manual=False)

    def _stopped(self, inst: Instance, reason: str, **fields: Any) -> None:
        inst.cancel_timer()
        inst.state = _K.PROCESS_STATE_STOPPED
        self._emit(inst, _K.PROCESS_EVENT_KIND_STOPPED, reason, **fields)
        inst.settle()

    def _fatal(self, inst: Instance, reason: str, kind: int, **fields: Any) -> None:
        inst.cancel_timer()
        inst.state = _K.PROCESS_STATE_FATAL
        inst.last_exit_reason = reason
        self._emit(inst, kind, reason, **fields)
        if kind != _K.PROCESS_EVENT_KIND_FATAL:
            self._emit(inst, _K.PROCESS_EVENT_KIND_FATAL, reason, **fields)
        inst.settle()

    def _report_exit(self, inst: Instance, pid: int, reason: str) -> None:
        # Skip when the broker itself exited or is not up: nobody would answer.
        if inst.service == BROKER_SERVICE or not self.broker_address:
            return
        brokers = self.instances.get(BROKER_SERVICE, {}).values()
        if any(i.state == _K.PROCESS_STATE_RUNNING for i in brokers):
            self._broker.report_exit(self.broker_address, inst.instance_id, pid, reason)


def free_port() -> int:
    """A loopback port that is free right now (bound to port 0 and released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((ident.LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _signal_group(inst: Instance, sig: int) -> bool:
    """Signal the instance's current process group (False when there is none, or it is gone)."""
    return inst.child is not None and inst.child.signal_group(sig)


def _nothing() -> None:
    """A handler that does nothing: ``drain()`` waits for it to know the queue got this far."""


def _tail(lines: list[str]) -> str:
    return "; last output lines:\n  " + "\n  ".join(lines) if lines else "; it printed nothing"
