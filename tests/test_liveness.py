"""Liveness: a frozen process (SIGSTOP) is caught by probes with a deadline, not by its streams.

Pure: the rule in runtime.liveness and the lab.yaml section. In-process: the health service's
prober against a grpc.health.v1 server that stops answering. Real processes: a small lab
(tests/labs/liveness.yaml, probes every 0.5 s) where a calculator and then the health service
itself are SIGSTOPped and thawed, and a lab with ``restart_after_s`` (liveness-restart.yaml)
where the supervisor restarts a frozen calculator. Every test that freezes a process thaws it in
a ``finally`` (SIGCONT), so teardown can stop it and nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import TypeVar

import grpc
import pytest
from grpc_health.v1 import health_pb2 as gh_pb2
from grpc_health.v1 import health_pb2_grpc as gh_grpc

from runtime.errors import ConfigError
from runtime.lab import Lab
from runtime.liveness import LivenessSettings, LivenessTracker
from runtime.services.health.probe import Prober
from runtime.services.health.settings import HealthSettings
from runtime.services.health.store import DEGRADED, HEALTHY, UNHEALTHY, HealthStore
from runtime.supervisor.config import parse_config

T = TypeVar("T")

PERIOD_S = 0.5  # tests/labs/liveness*.yaml
FAILURES = 3
# A 2-core machine shared with other tests: a probe loop or a poll may run late by this much.
SLACK_S = 1.0
CAUGHT_WITHIN_S = FAILURES * PERIOD_S + SLACK_S
WAIT_S = 15.0
NOT_RESPONDING = "not responding (3 probes timed out)"


def wait_until(predicate: Callable[[], T], timeout_s: float, what: str) -> T:
    """Poll ``predicate`` every 20 ms until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            last = value = predicate()
        except Exception as exc:  # noqa: BLE001 - a service restarting counts as "not yet"
            last, value = exc, None  # type: ignore[assignment]
        if value:
            return value
        assert time.monotonic() < deadline, (
            f"timed out after {timeout_s:g} s waiting for {what}; last: {last!r:.300}"
        )
        time.sleep(0.02)


def thaw(pid: int) -> None:
    """SIGCONT, whatever happened: a stopped process would survive teardown's SIGTERM."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


def health_of(lab: Lab, instance: str) -> tuple[str, str]:
    df = lab.health()
    row = df[df.instance == instance]
    return (row.state.iloc[0], row.message.iloc[0]) if not row.empty else ("", "")


def healthy(lab: Lab, instances: set[str]) -> bool:
    df = lab.health()
    states = dict(zip(df.instance, df.state, strict=True))
    return all(states.get(i) == "HEALTHY" for i in instances)


def events_of(lab: Lab, instance: str, event: str) -> list[str]:
    df = lab.events()
    return list(df[(df.instance == instance) & (df.event == event)].reason)


# -- pure -------------------------------------------------------------------------------------


def test_k_misses_make_it_not_responding_and_one_answer_ends_it():
    t = LivenessTracker(LivenessSettings(period_s=1, timeout_s=0.5, failures=3, restart_after_s=5))
    assert t.observe(answered=True, now=0.0) is None
    assert t.observe(answered=False, now=1.0) is None
    assert t.observe(answered=False, now=2.0) is None
    change = t.observe(answered=False, now=3.0)
    assert change is not None and not change.responding and change.reason == NOT_RESPONDING
    assert t.observe(answered=False, now=4.0) is None  # said once
    # Not responding since the first miss: restart due 5 s after it, not 5 s after the verdict.
    assert t.not_responding_for(5.5) == 4.5 and not t.restart_due(5.5)
    assert t.restart_due(6.0)
    back = t.observe(answered=True, now=7.0)
    assert back is not None and back.responding and back.reason == "responding again after 6.0 s"
    assert not t.restart_due(100.0) and t.not_responding_for(100.0) == 0.0


def test_flapping_never_decides_and_restart_after_zero_never_restarts():
    t = LivenessTracker(LivenessSettings(failures=3))
    for i in range(21):  # two misses, one answer, ...: never three in a row
        assert t.observe(answered=i % 3 == 2, now=float(i)) is None
    for i in range(21, 24):
        change = t.observe(answered=False, now=float(i), timed_out=False, detail="UNAVAILABLE: refused")
    assert change is not None and change.reason == (
        "not responding (3 probes unanswered, 0 timed out; last: UNAVAILABLE: refused)"
    )
    assert not t.restart_due(10_000.0)  # restart_after_s defaults to 0: off
    slow = LivenessTracker(LivenessSettings(failures=1), recoveries=2)
    assert slow.observe(answered=False, now=0.0) is not None
    assert slow.observe(answered=True, now=1.0) is None  # one answer is not enough for recoveries=2
    assert slow.observe(answered=True, now=2.0) is not None


def test_lab_yaml_liveness_section_defaults_and_errors():
    body = {"command": ["x"]}
    spec = parse_config({"services": {"calc": body}}, "lab.yaml").services["calc"]
    assert (spec.liveness.period_s, spec.liveness.timeout_s, spec.liveness.failures) == (1.0, 0.5, 3)
    assert spec.liveness.restart_after_s == 0
    set_ = {**body, "liveness": {"period_s": 0.5, "timeout_s": 0.25, "failures": 2, "restart_after_s": 4}}
    live = parse_config({"services": {"calc": set_}}, "lab.yaml").services["calc"].liveness
    assert (live.period_s, live.timeout_s, live.failures, live.restart_after_s) == (0.5, 0.25, 2, 4)
    for bad, field in (
        ({"failures": 0}, "failures"),
        ({"period_s": "fast"}, "period_s"),
        ({"timeout_s": 2}, "timeout_s"),  # above the 1 s period
        ({"restart_after_s": -1}, "restart_after_s"),
        ({"every": 1}, "every"),
    ):
        with pytest.raises(ConfigError, match=rf"services\.calc\.liveness\.{field}"):
            parse_config({"services": {"calc": {**body, "liveness": bad}}}, "lab.yaml")


# -- in-process: the health service's prober ----------------------------------------------------


class FreezableHealth(gh_grpc.HealthServicer):
    """grpc.health.v1 that stops answering (sleeps past any deadline) while ``frozen``."""

    def __init__(self) -> None:
        self.frozen = False

    async def Check(self, request, context):
        while self.frozen:
            await asyncio.sleep(0.01)
        return gh_pb2.HealthCheckResponse(status=gh_pb2.HealthCheckResponse.SERVING)


async def _wait_state(store: HealthStore, instance: str, state: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (rec := store.get(instance)) is None or rec.state != state:
        assert time.monotonic() < deadline, f"{instance} never became {state}; is {rec and rec.state}"
        await asyncio.sleep(0.01)


def test_prober_holds_a_pushing_instance_unhealthy_and_restores_its_last_report():
    async def scenario() -> None:
        health = FreezableHealth()
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        gh_grpc.add_HealthServicer_to_server(health, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        store = HealthStore()
        settings = HealthSettings(push_grace_s=0.0, successes_before_healthy=2)
        prober = Prober(store, settings)
        prober.configure("calculator", LivenessSettings(period_s=0.05, timeout_s=0.03, failures=3))
        try:
            store.apply("calculator", "calculator-1", HEALTHY, "serving", source="push")
            store.get("calculator-1").pushing = True
            prober.track("calculator", "calculator-1", f"127.0.0.1:{port}")
            health.frozen = True
            await _wait_state(store, "calculator-1", UNHEALTHY)
            record = store.get("calculator-1")
            assert (record.message, record.source) == (NOT_RESPONDING, "liveness")
            # A report arriving meanwhile (say, queued before the freeze) waits for the probes.
            record.held = (DEGRADED, "busy")
            health.frozen = False
            await _wait_state(store, "calculator-1", DEGRADED)
            assert (
                store.get("calculator-1").message == "responding again (2 probes answered); last report: busy"
            )
            reasons = [e.reason for e in store.history(instance_id="calculator-1")]
            assert reasons[-2:] == [NOT_RESPONDING, "responding again (2 probes answered); last report: busy"]
        finally:
            await prober.close()
            await server.stop(None)

    asyncio.run(scenario())


# -- real processes -----------------------------------------------------------------------------


def test_frozen_calculator_is_unhealthy_and_out_of_lookups_then_back(lab_factory):
    lab = lab_factory("liveness")
    wait_until(lambda: healthy(lab, {"calculator-1", "calculator-2"}), WAIT_S, "both calculators HEALTHY")
    wait_until(lambda: len(lab.lookup("calculator")) == 2, WAIT_S, "both calculators in lookups")
    victim = lab.kill("calculator", 1, signal="SIGSTOP")
    frozen_at = time.monotonic()
    try:
        wait_until(lambda: health_of(lab, "calculator-1")[0] == "UNHEALTHY", WAIT_S, "calculator-1 UNHEALTHY")
        unhealthy_s = time.monotonic() - frozen_at
        wait_until(
            lambda: "calculator-1" not in set(lab.lookup("calculator").instance), WAIT_S, "out of lookups"
        )
        out_s = time.monotonic() - frozen_at
        assert health_of(lab, "calculator-1") == ("UNHEALTHY", NOT_RESPONDING)
        assert unhealthy_s <= CAUGHT_WITHIN_S and out_s <= CAUGHT_WITHIN_S, (unhealthy_s, out_s)
        # Frozen, not dead: the same process is still there, and the other calculator still serves.
        row = lab.status().set_index("instance").loc["calculator-1"]
        assert int(row.pid) == victim["pid"] and row.state == "RUNNING"
        assert set(lab.lookup("calculator").instance) == {"calculator-2"}
        hist = lab.health.history("calculator", "calculator-1")
        assert NOT_RESPONDING in set(hist.reason) and "liveness" in set(hist.source)
    finally:
        thaw(victim["pid"])
    thawed_at = time.monotonic()
    wait_until(lambda: health_of(lab, "calculator-1")[0] == "HEALTHY", WAIT_S, "calculator-1 HEALTHY again")
    wait_until(lambda: "calculator-1" in set(lab.lookup("calculator").instance), WAIT_S, "back in lookups")
    back_s = time.monotonic() - thawed_at
    assert "responding again" in health_of(lab, "calculator-1")[1]
    print(
        f"\nSIGSTOP -> UNHEALTHY {unhealthy_s:.2f} s, -> out of lookups {out_s:.2f} s; SIGCONT -> back {back_s:.2f} s"
    )


def test_frozen_health_service_is_noticed_by_the_supervisor(lab_factory):
    lab = lab_factory("liveness")
    wait_until(lambda: healthy(lab, {"health-1", "calculator-1"}), WAIT_S, "health-1 HEALTHY")
    frozen = lab.kill("health", signal="SIGSTOP")
    frozen_at = time.monotonic()
    try:
        reasons = wait_until(
            lambda: events_of(lab, "health-1", "NOT_RESPONDING"), CAUGHT_WITHIN_S + 1, "NOT_RESPONDING event"
        )
        noticed_s = time.monotonic() - frozen_at
        assert reasons == ["health-1 not responding (3 probes timed out)"]
        row = lab.status().set_index("instance").loc["health-1"]
        assert not row.responding and row.liveness.startswith("not responding (3 probes timed out) for ")
        assert int(row.pid) == frozen["pid"] and row.state == "RUNNING"
    finally:
        thaw(frozen["pid"])
    wait_until(lambda: events_of(lab, "health-1", "RESPONDING"), WAIT_S, "RESPONDING event")
    assert events_of(lab, "health-1", "RESPONDING")[0].startswith("health-1 responding again after ")
    assert lab.status().set_index("instance").loc["health-1"].responding
    # Once it runs again, the supervisor's word is in its own history too.
    wait_until(
        lambda: any(
            r.startswith("the supervisor saw health-1 not responding")
            for r in lab.health.history("health").reason
        ),
        WAIT_S,
        "the note in the health service's own history",
    )
    wait_until(
        lambda: healthy(lab, {"health-1", "calculator-1", "calculator-2"}), WAIT_S, "every instance HEALTHY"
    )
    print(f"\nhealth-1 SIGSTOP -> NOT_RESPONDING event {noticed_s:.2f} s")


def test_restart_after_s_restarts_a_frozen_instance_with_its_reason(lab_factory):
    lab = lab_factory("liveness-restart")
    old = lab.kill("calculator", 1, signal="SIGSTOP")
    frozen_at = time.monotonic()
    try:
        row = lab.wait_restarted("calculator-1", old["pid"], timeout_s=WAIT_S)
        restarted_s = time.monotonic() - frozen_at
    finally:
        thaw(old["pid"])
    assert int(row.pid) != old["pid"] and row.restarts == 1
    df = lab.events()
    mine = df[df.instance == "calculator-1"]
    decision = mine[mine.reason.str.startswith("liveness: not responding for")]
    assert len(decision) == 1, list(mine.reason)
    assert decision.event.iloc[0] == "SIGNALED" and decision.reason.iloc[0].endswith("; restarting")
    assert "restart after 2s" in decision.rule.iloc[0]
    after = list(mine[mine.seq > decision.seq.iloc[0]].event)
    assert after[:3] == ["EXITED", "RESTART_SCHEDULED", "SPAWNED"], after
    assert "killed by SIGKILL" in set(mine.reason)
    with pytest.raises(ProcessLookupError):
        os.kill(old["pid"], 0)  # the frozen process is gone, not just forgotten
    print(f"\nSIGSTOP -> restarted {restarted_s:.2f} s (restart_after_s 2, probes every 0.5 s)")
