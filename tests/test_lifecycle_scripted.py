"""The lifecycle with scripted histories: fake children, a fake clock, no processes, no sleeps.

``Manager`` (a ``Lifecycle``) takes its spawn function and its clock through the constructor. Here
the spawn function hands out :class:`FakeChild` objects that become ready or exit when the test
says so, and :class:`FakeClock` only moves when the test advances it, so every restart delay,
backoff step, start-limit window and grace period is checked exactly and instantly. The same
rules against real children: tests/test_supervisor_restarts.py.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from runtime import identity as ident
from runtime.supervisor.child import ChildReport
from runtime.supervisor.config import LabConfig, ServiceSpec, StartLimit
from runtime.supervisor.instance import Desired, Instance
from runtime.supervisor.manager import Manager
from runtime.v1 import supervisor_pb2 as pb

# Above Linux's pid_max (4194304): should a fake pid ever reach a real kill(), it finds nothing.
FAKE_PID_BASE = 10_000_000
START_MONO = 1000.0
K = pb


@dataclass(order=True)
class FakeTimer:
    """One scheduled callback of the fake clock."""

    due: float
    seq: int
    callback: Callable[..., None] = field(compare=False)
    args: tuple[Any, ...] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Monotonic and wall time that move only in ``advance``, firing due timers in order."""

    def __init__(self, start: float = START_MONO) -> None:
        self.now = start
        self._timers: list[FakeTimer] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def wall_ms(self) -> int:
        return int(round(self.now * 1000))

    def call_later(self, delay_s: float, callback: Callable[..., None], *args: Any) -> FakeTimer:
        timer = FakeTimer(self.now + delay_s, next(self._seq), callback, args)
        heapq.heappush(self._timers, timer)
        return timer

    def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while self._timers and self._timers[0].due <= target + 1e-9:
            timer = heapq.heappop(self._timers)
            self.now = max(self.now, timer.due)
            if not timer.cancelled:
                timer.callback(*timer.args)
        self.now = target

    def pending(self) -> list[float]:
        """Seconds from now until each timer that is still due to fire."""
        return sorted(round(t.due - self.now, 6) for t in self._timers if not t.cancelled)


class FakeChild:
    """A child that becomes ready and exits when the test says; signals act like the kernel's."""

    def __init__(self, pid: int, argv: list[str], env: dict[str, str], *, obeys_term: bool) -> None:
        self.pid = pid
        self.argv = argv
        self.env = env
        self.obeys_term = obeys_term
        self.signals: list[int] = []
        self.report: ChildReport | None = None
        self.gone = False

    def signal_group(self, sig: int) -> bool:
        self.signals.append(sig)
        if self.gone:
            return False
        if sig == signal.SIGKILL or (sig == signal.SIGTERM and self.obeys_term):
            self.exit(-sig)
        return True

    def watch(self, report: ChildReport) -> Awaitable[None]:
        self.report = report  # synchronously: the test may script the child right away
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def ready(self, port: int = 5000, healthy: bool = True) -> None:
        assert self.report is not None
        self.report.ready(port, healthy)

    def exit(self, code: int) -> None:
        assert self.report is not None and not self.gone
        self.gone = True
        self.report.exited(code)


class FakeSpawner:
    """The spawn function: a FakeChild per call, remembered per instance id."""

    def __init__(self, *, obeys_term: bool = True) -> None:
        self.children: list[FakeChild] = []
        self.obeys_term = obeys_term
        self.error: OSError | None = None

    async def __call__(self, argv: list[str], env: dict[str, str], cwd: str) -> FakeChild:
        if self.error is not None:
            raise self.error
        child = FakeChild(FAKE_PID_BASE + len(self.children) + 1, argv, env, obeys_term=self.obeys_term)
        self.children.append(child)
        return child

    def of(self, instance_id: str) -> list[FakeChild]:
        return [c for c in self.children if c.env[ident.ENV_INSTANCE] == instance_id]


class Scripted:
    """A Manager over fake children and a fake clock, its queue running; ``settle()`` after each step."""

    def __init__(self, tmp_path: Path, *specs: ServiceSpec, obeys_term: bool = True) -> None:
        config = LabConfig(
            path=str(tmp_path / "lab.yaml"),
            project_root=str(tmp_path),
            services={s.name: s for s in specs},
        )
        self.clock = FakeClock()
        self.spawner = FakeSpawner(obeys_term=obeys_term)
        self.manager = Manager(
            config, lab_dir=str(tmp_path / "lab"), spawn=self.spawner, clock=self.clock, liveness=False
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Scripted:
        self._task = asyncio.create_task(self.manager.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def settle(self) -> None:
        await self.manager.drain()

    async def do(self, handler: Callable[..., Any], *args: Any) -> Any:
        result = await self.manager.call(handler, *args)
        await self.settle()
        return result

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await self.settle()

    async def step(self, action: Callable[[], None]) -> None:
        action()
        await self.settle()

    def inst(self, instance_id: str) -> Instance:
        return self.manager.select(instance_id=instance_id)[0]

    def child(self, instance_id: str) -> FakeChild:
        return self.spawner.of(instance_id)[-1]

    def events(self, instance_id: str, kind: int | None = None) -> list[pb.ProcessEvent]:
        return [
            e
            for e in self.manager.events.recent(10_000)
            if e.instance_id == instance_id and (kind is None or e.kind == kind)
        ]

    def kinds(self, instance_id: str) -> list[str]:
        return [
            pb.ProcessEventKind.Name(e.kind)[len("PROCESS_EVENT_KIND_") :] for e in self.events(instance_id)
        ]


def spec(name: str = "svc", **kw: Any) -> ServiceSpec:
    return ServiceSpec(name=name, command=("python", "-c", "pass"), **kw)


def run(tmp_path: Path, *specs: ServiceSpec, obeys_term: bool = True) -> Callable[..., None]:
    """Decorator: run the async scenario ``body(lab)`` against a fresh Scripted manager."""

    def wrap(body: Callable[[Scripted], Awaitable[None]]) -> None:
        async def main() -> None:
            async with Scripted(tmp_path, *specs, obeys_term=obeys_term) as lab:
                await body(lab)

        asyncio.run(main())

    return wrap


def test_crash_restarts_after_the_delay(tmp_path: Path) -> None:
    @run(tmp_path, spec(restart_delay_s=0.5))
    async def _(lab: Scripted) -> None:
        await lab.do(lab.manager.start_all)
        first = lab.child("svc-1")
        assert lab.inst("svc-1").state == K.PROCESS_STATE_STARTING
        await lab.step(lambda: first.ready(port=5001))
        assert (lab.inst("svc-1").state, lab.inst("svc-1").port) == (K.PROCESS_STATE_RUNNING, 5001)
        await lab.advance(3.0)
        await lab.step(lambda: first.exit(7))
        inst = lab.inst("svc-1")
        assert inst.state == K.PROCESS_STATE_BACKOFF
        assert inst.next_start_at_ms == lab.clock.wall_ms() + 500
        exited = lab.events("svc-1", K.PROCESS_EVENT_KIND_EXITED)[-1]
        assert (exited.reason, exited.exit_code, exited.pid) == ("exited with code 7", 7, first.pid)
        sched = lab.events("svc-1", K.PROCESS_EVENT_KIND_RESTART_SCHEDULED)[-1]
        assert sched.rule == "restart=always, delay 0.5s (attempt 1)"
        assert first.signals == [signal.SIGKILL]  # after the exit: whatever is left in its group
        await lab.advance(0.499)
        assert len(lab.spawner.of("svc-1")) == 1 and inst.state == K.PROCESS_STATE_BACKOFF
        await lab.advance(0.001)
        second = lab.child("svc-1")
        assert second is not first and second.pid != first.pid
        assert (inst.state, inst.restarts, inst.pid) == (K.PROCESS_STATE_STARTING, 1, second.pid)
        assert lab.kinds("svc-1") == ["SPAWNED", "READY", "EXITED", "RESTART_SCHEDULED", "SPAWNED"]


def test_backoff_doubles_up_to_the_cap_and_a_stable_run_resets_it(tmp_path: Path) -> None:
    svc = spec(
        restart_delay_s=0.5,
        backoff_factor=2.0,
        backoff_max_s=3.0,
        start_limit=StartLimit(starts=100, within_s=30),
    )

    @run(tmp_path, svc)
    async def _(lab: Scripted) -> None:
        await lab.do(lab.manager.start_all)
        delays = []
        for _attempt in range(5):
            await lab.step(lambda: lab.child("svc-1").exit(1))  # dies before READY
            delays.append(lab.clock.pending())
            await lab.advance(lab.clock.pending()[0])
        assert delays == [[0.5], [1.0], [2.0], [3.0], [3.0]]
        rules = [e.rule for e in lab.events("svc-1", K.PROCESS_EVENT_KIND_RESTART_SCHEDULED)]
        assert rules[3:] == ["restart=always, delay 3s (attempt 4)", "restart=always, delay 3s (attempt 5)"]
        assert len(lab.events("svc-1", K.PROCESS_EVENT_KIND_START_FAILED)) == 5
        # A run of STABLE_RUN_S (10 s) or more: the next crash starts the backoff from scratch.
        await lab.step(lambda: lab.child("svc-1").ready())
        await lab.advance(10.0)
        await lab.step(lambda: lab.child("svc-1").exit(1))
        assert lab.clock.pending() == [0.5]
        assert lab.events("svc-1", K.PROCESS_EVENT_KIND_RESTART_SCHEDULED)[-1].rule.endswith("(attempt 1)")


def test_start_limit_turns_fatal_with_the_reason_and_a_manual_start_forgets(tmp_path: Path) -> None:
    @run(
        tmp_path, spec(restart_delay_s=1.0, backoff_factor=1.0, start_limit=StartLimit(starts=3, within_s=10))
    )
    async def _(lab: Scripted) -> None:
        await lab.do(lab.manager.start_all)
        for _ in range(2):
            await lab.step(lambda: lab.child("svc-1").exit(2))
            await lab.advance(1.0)
        await lab.step(lambda: lab.child("svc-1").exit(2))  # the third start in 2 s exits too
        inst = lab.inst("svc-1")
        assert inst.state == K.PROCESS_STATE_FATAL and lab.clock.pending() == []
        fatal = lab.events("svc-1", K.PROCESS_EVENT_KIND_FATAL)
        assert len(fatal) == 1
        assert fatal[0].rule == "start limit 3 in 10s reached: 3 starts; start it again by hand once fixed"
        assert fatal[0].reason == f"svc-1 exited with code 2; {fatal[0].rule}"
        assert inst.last_exit_reason == fatal[0].reason and inst.restarts == 2
        await lab.advance(60.0)
        assert len(lab.spawner.of("svc-1")) == 3  # FATAL stays down
        await lab.do(lab.manager.start, [inst])
        assert len(lab.spawner.of("svc-1")) == 4 and inst.state == K.PROCESS_STATE_STARTING


def test_start_limit_counts_only_starts_within_the_window(tmp_path: Path) -> None:
    @run(
        tmp_path, spec(restart_delay_s=6.0, backoff_factor=1.0, start_limit=StartLimit(starts=2, within_s=10))
    )
    async def _(lab: Scripted) -> None:
        await lab.do(lab.manager.start_all)
        for _ in range(4):  # each run lasts 5 s, then 6 s of delay: starts 11 s apart
            await lab.advance(5.0)
            await lab.step(lambda: lab.child("svc-1").exit(1))
            assert lab.inst("svc-1").state == K.PROCESS_STATE_BACKOFF
            await lab.advance(6.0)
        assert len(lab.spawner.of("svc-1")) == 5
        assert not lab.events("svc-1", K.PROCESS_EVENT_KIND_FATAL)
        # A run of 1 s instead: two starts within 10 s when it exits -> FATAL.
        await lab.advance(1.0)
        await lab.step(lambda: lab.child("svc-1").exit(1))
        await lab.advance(6.0)
        await lab.advance(1.0)
        await lab.step(lambda: lab.child("svc-1").exit(1))
        assert lab.inst("svc-1").state == K.PROCESS_STATE_FATAL
        assert lab.events("svc-1", K.PROCESS_EVENT_KIND_FATAL)[0].rule.startswith("start limit 2 in 10s")


@pytest.mark.parametrize(
    ("restart", "code", "state", "rule"),
    [
        ("always", 0, K.PROCESS_STATE_BACKOFF, "restart=always, delay 0.5s (attempt 1)"),
        ("on-failure", 0, K.PROCESS_STATE_EXITED, "restart=on-failure: exit code 0, not restarted"),
        ("on-failure", 3, K.PROCESS_STATE_BACKOFF, "restart=on-failure, delay 0.5s (attempt 1)"),
        ("on-failure", -9, K.PROCESS_STATE_BACKOFF, "restart=on-failure, delay 0.5s (attempt 1)"),
        ("never", 3, K.PROCESS_STATE_EXITED, "restart=never: not restarted"),
        ("never", 0, K.PROCESS_STATE_EXITED, "restart=never: not restarted"),
    ],
)
def test_restart_policies(tmp_path: Path, restart: str, code: int, state: int, rule: str) -> None:
    @run(tmp_path, spec(restart=restart))
    async def _(lab: Scripted) -> None:
        await lab.do(lab.manager.start_all)
        await lab.step(lambda: lab.child("svc-1").ready())
        await lab.step(lambda: lab.child("svc-1").exit(code))
        inst = lab.inst("svc-1")
        assert inst.state == state and inst.exit_code == code
        decided = [e.rule for e in lab.events("svc-1") if e.rule]
        assert decided == [rule]
        await lab.advance(1.0)
        assert len(lab.spawner.of("svc-1")) == (2 if state == K.PROCESS_STATE_BACKOFF else 1)


def test_depends_on_holds_dependants_until_the_condition_holds(tmp_path: Path) -> None:
    specs = (
        spec("web", depends_on={"api": "healthy"}),
        spec("api", depends_on={"db": "ready"}),
        spec("db"),
        spec("sidecar", depends_on={"db": "started"}),
    )

    @run(tmp_path, *specs)
    async def _(lab: Scripted) -> None:
        await lab.do(lab.manager.start_all)
        spawned = [c.env[ident.ENV_INSTANCE] for c in lab.spawner.children]
        assert spawned == ["db-1", "sidecar-1"]  # started: a spawned db is enough
        assert lab.inst("api-1").state == K.PROCESS_STATE_WAITING
        assert [e.reason for e in lab.events("api-1", K.PROCESS_EVENT_KIND_WAITING)] == [
            "waiting for db to be ready"
        ]
        await lab.advance(30.0)  # time alone changes nothing
        assert len(lab.spawner.children) == 2
        await lab.step(lambda: lab.child("db-1").ready())
        assert [c.env[ident.ENV_INSTANCE] for c in lab.spawner.children][2:] == ["api-1"]
        assert lab.inst("web-1").state == K.PROCESS_STATE_WAITING
        await lab.step(lambda: lab.child("api-1").ready(healthy=False))  # READY, health not confirmed
        assert lab.inst("api-1").state == K.PROCESS_STATE_RUNNING
        assert not lab.spawner.of("web-1")
        await lab.step(lambda: lab.child("api-1").ready(healthy=True))  # the late confirmation
        assert len(lab.spawner.of("web-1")) == 1
        ready = lab.events("db-1", K.PROCESS_EVENT_KIND_READY)[0]
        assert ready.seq < lab.events("api-1", K.PROCESS_EVENT_KIND_SPAWNED)[0].seq


def test_stop_during_backoff_cancels_the_restart(tmp_path: Path) -> None:
    @run(tmp_path, spec(restart_delay_s=2.0))
    async def _(lab: Scripted) -> None:
        await lab.do(lab.manager.start_all)
        await lab.step(lambda: lab.child("svc-1").exit(1))
        inst = lab.inst("svc-1")
        assert inst.state == K.PROCESS_STATE_BACKOFF and lab.clock.pending() == [2.0]
        waits = await lab.do(lab.manager.stop, [inst])
        await asyncio.wait_for(asyncio.gather(*waits), 1)
        assert (inst.state, inst.desired) == (K.PROCESS_STATE_STOPPED, Desired.STOP)
        assert lab.clock.pending() == []
        await lab.advance(60.0)
        assert len(lab.spawner.of("svc-1")) == 1
        assert lab.kinds("svc-1")[-1] == "STOPPED"


def test_stop_sends_sigterm_then_sigkill_after_the_grace(tmp_path: Path) -> None:
    @run(tmp_path, spec(stop_grace_s=3.0), obeys_term=False)
    async def _(lab: Scripted) -> None:
        await lab.do(lab.manager.start_all)
        child = lab.child("svc-1")
        await lab.step(lambda: child.ready())
        waits = await lab.do(lab.manager.stop, lab.manager.select("svc"))
        inst = lab.inst("svc-1")
        assert inst.state == K.PROCESS_STATE_STOPPING and child.signals == [signal.SIGTERM]
        await lab.advance(2.9)
        assert inst.state == K.PROCESS_STATE_STOPPING and not waits[0].done()
        await lab.advance(0.1)
        assert child.signals[:2] == [signal.SIGTERM, signal.SIGKILL]
        assert inst.state == K.PROCESS_STATE_STOPPED and waits[0].done()
        assert lab.kinds("svc-1")[-3:] == ["STOPPING", "SIGNALED", "STOPPED"]
        assert lab.events("svc-1", K.PROCESS_EVENT_KIND_STOPPED)[-1].reason == (
            "killed by SIGKILL after stop request"
        )


def test_manual_restart_runs_again_at_once(tmp_path: Path) -> None:
    @run(tmp_path, spec(restart_delay_s=5.0))
    async def _(lab: Scripted) -> None:
        await lab.do(lab.manager.start_all)
        first = lab.child("svc-1")
        await lab.step(lambda: first.ready())
        await lab.do(lab.manager.restart, lab.manager.select("svc"))
        assert first.signals[0] == signal.SIGTERM and first.gone
        assert len(lab.spawner.of("svc-1")) == 2 and lab.clock.pending() == []
        inst = lab.inst("svc-1")
        assert (inst.state, inst.desired, inst.restarts) == (K.PROCESS_STATE_STARTING, Desired.RUN, 1)


def test_stale_reports_of_an_earlier_run_are_dropped(tmp_path: Path) -> None:
    @run(tmp_path, spec(restart_delay_s=0.5))
    async def _(lab: Scripted) -> None:
        await lab.do(lab.manager.start_all)
        first = lab.child("svc-1")
        assert first.report is not None
        old = first.report
        await lab.step(lambda: first.exit(1))
        await lab.advance(0.5)
        second = lab.child("svc-1")
        inst = lab.inst("svc-1")
        assert (inst.generation, old.generation) == (2, 1)
        before = len(lab.events("svc-1"))
        await lab.step(lambda: old.ready(4444, True))  # the first run's late READY ...
        await lab.step(lambda: old.exited(1))  # ... and a second report of its exit
        await lab.step(lambda: old.ready_timeout("no READY line within 15s"))
        assert len(lab.events("svc-1")) == before
        assert (inst.state, inst.port, inst.pid) == (K.PROCESS_STATE_STARTING, 0, second.pid)
        assert lab.clock.pending() == [] and second.signals == []
        await lab.step(lambda: second.ready(5555))
        assert (inst.state, inst.port) == (K.PROCESS_STATE_RUNNING, 5555)


def test_ready_timeout_kills_and_the_policy_decides(tmp_path: Path) -> None:
    @run(tmp_path, spec(restart="never"))
    async def _(lab: Scripted) -> None:
        await lab.do(lab.manager.start_all)
        child = lab.child("svc-1")
        await lab.step(lambda: child.report.ready_timeout("no READY line within 15s"))  # type: ignore[union-attr]
        assert child.signals[0] == signal.SIGKILL and child.gone
        failed = lab.events("svc-1", K.PROCESS_EVENT_KIND_START_FAILED)
        assert [e.reason for e in failed] == [
            "svc-1: no READY line within 15s; killing it; it printed nothing"
        ]
        assert lab.inst("svc-1").state == K.PROCESS_STATE_EXITED
        assert lab.events("svc-1", K.PROCESS_EVENT_KIND_EXITED)[-1].rule == "restart=never: not restarted"


def test_missing_requirement_is_skipped_and_stays_skipped(tmp_path: Path) -> None:
    @run(tmp_path, spec("ts", requires=("no-such-tool-xyz",)), spec("app", depends_on={"ts": "ready"}))
    async def _(lab: Scripted) -> None:
        await lab.do(lab.manager.start_all)
        ts = lab.inst("ts-1")
        assert (ts.state, ts.last_exit_reason) == (
            K.PROCESS_STATE_SKIPPED,
            "no-such-tool-xyz not found; install it to run this service",
        )
        assert lab.inst("app-1").state == K.PROCESS_STATE_WAITING and lab.spawner.children == []
        waits = await lab.do(lab.manager.stop, [ts])
        assert waits[0].done() and ts.state == K.PROCESS_STATE_SKIPPED
        await lab.do(lab.manager.start, [ts])  # checked again: still missing
        assert ts.state == K.PROCESS_STATE_SKIPPED and lab.spawner.children == []


def test_command_not_found_is_fatal_with_the_fix(tmp_path: Path) -> None:
    @run(tmp_path, spec())
    async def _(lab: Scripted) -> None:
        lab.spawner.error = FileNotFoundError(2, "command not found", "python")
        await lab.do(lab.manager.start_all)
        inst = lab.inst("svc-1")
        assert inst.state == K.PROCESS_STATE_FATAL
        assert "could not start: command 'python' not found" in inst.last_exit_reason
        assert inst.last_exit_reason.endswith("install it or fix services.svc.command")
        assert lab.kinds("svc-1") == ["START_FAILED", "FATAL"]


def test_scale_down_stops_and_forgets_the_highest(tmp_path: Path) -> None:
    @run(tmp_path, spec(instances=3))
    async def _(lab: Scripted) -> None:
        await lab.do(lab.manager.start_all)
        waits = await lab.do(lab.manager.scale, "svc", 1)
        await asyncio.wait_for(asyncio.gather(*waits), 1)
        assert [i.instance_id for i in lab.manager.select("svc")] == ["svc-1"]
        assert all(c.gone for c in lab.spawner.children[1:]) and not lab.spawner.children[0].gone
        await lab.do(lab.manager.scale, "svc", 2)
        assert [i.instance_id for i in lab.manager.select("svc")] == ["svc-1", "svc-2"]
        assert len(lab.spawner.of("svc-2")) == 2
