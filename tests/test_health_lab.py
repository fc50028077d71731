"""Health in a real lab: supervisor, broker, health service, calculators, and the Lab's health views.

The tests about what an agent pushes run against the Python and the TypeScript calculator
(``[python]``, ``[typescript]``; tests/calculator_languages.py).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from calculator_languages import CALCULATOR_LANGUAGES, calculator_lab
from waiting import wait_until

from calculator.lab import CalculatorLab
from runtime.errors import ServiceNotFound
from runtime.lab import Lab
from runtime.lab.health import HEALTH_COLUMNS, HISTORY_COLUMNS, HealthChange

WAIT_S = 10.0
SAMPLED_AFTER_RESTART_S = 0.5
SLOW_MS = 300  # above the DEGRADED rule's default p99 threshold (250 ms)
SLOW_CALLS = 24  # more than the rule's MIN_SAMPLES (20)
# Slow calls leave the rule's 5 s latency window, then calm must hold 2 s: HEALTHY after ~7 s.
RECOVER_WAIT_S = 20.0


@pytest.fixture
def lab(request: pytest.FixtureRequest, lab_factory) -> Lab:
    return calculator_lab(lab_factory, "health", getattr(request, "param", "python"))


def all_healthy(lab: Lab, instances: set[str]) -> bool:
    try:
        df = lab.health()
    except Exception:
        return False
    states = dict(zip(df.instance, df.state, strict=True))
    return all(states.get(i) == "HEALTHY" for i in instances)


class LookupSampler(threading.Thread):
    """Samples lab.lookup("calculator") every few ms: (time, {instance: pid})."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(name="lookup-sampler", daemon=True)
        self.lab = lab
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.005):
            asked = time.monotonic()  # when the lookup was asked, not when its answer came back
            df = self.lab.lookup("calculator")
            self.samples.append((asked, dict(zip(df.instance, df.pid, strict=True))))


@pytest.mark.parametrize("lab", CALCULATOR_LANGUAGES, indirect=True)
def test_crash_is_seen_unhealthy_starting_healthy_and_the_broker_hides_the_dead(lab: Lab):
    instances = {"broker-1", "health-1", "calculator-1", "calculator-2"}
    wait_until(lambda: all_healthy(lab, instances), WAIT_S, "every instance HEALTHY")
    seen: list[tuple[float, HealthChange]] = []
    watch = lab.health.watch(lambda c: seen.append((time.monotonic(), c)))
    sampler = LookupSampler(lab)
    try:
        wait_until(lambda: watch.connected.is_set(), WAIT_S, "the health watch to connect")
        sampler.start()
        victim = lab.kill("calculator", 1)
        killed_at = time.monotonic()

        def back_healthy():
            return [
                t
                for t, c in seen
                if c.instance == "calculator-1" and c.new_state == "HEALTHY" and t > killed_at
            ]

        wait_until(back_healthy, WAIT_S, "calculator-1 HEALTHY again")
    finally:
        sampler.halt.set()
        sampler.join(5)
        watch.stop()
    assert not watch.running

    mine = [(t, c) for t, c in seen if c.instance == "calculator-1" and not c.snapshot]
    states = [c.new_state for _, c in mine]
    # Notes (same state, e.g. "restart scheduled") may sit between the transitions.
    changes = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
    assert changes == ["UNHEALTHY", "STARTING", "HEALTHY"], mine
    reasons = " | ".join(c.reason for _, c in mine)
    assert "SIGKILL" in reasons and "restart" in reasons, reasons
    # UNHEALTHY came from the supervisor's exit report (the SIGKILL reason above), not from probes
    # timing out: how fast that is, benchmarks/bench_health.py measures.
    unhealthy_at = next(t for t, c in mine if c.new_state == "UNHEALTHY")

    # The broker hides the dead process and never hands it out again. (Not "from the moment a
    # watcher sees UNHEALTHY": the broker learns of the exit from the supervisor's ReportExit and
    # the health service's SetInstanceHealth, each racing the watcher's stream by a few ms.)
    after = [pids for t, pids in sampler.samples if t >= unhealthy_at]
    assert after, "no lookup samples after the crash"
    hidden = [i for i, pids in enumerate(after) if pids.get("calculator-1") != victim["pid"]]
    assert hidden, "the dead pid was never hidden from lookups"
    assert all(pids.get("calculator-1") != victim["pid"] for pids in after[hidden[0] :])
    # ... and it came back under its new pid.
    assert sampler.samples[-1][1].get("calculator-1") not in (None, victim["pid"])

    hist = lab.health.history("calculator")
    assert list(hist.columns) == HISTORY_COLUMNS
    assert {"UNHEALTHY", "STARTING", "HEALTHY"} <= set(hist[hist.instance == "calculator-1"].new_state)


def test_health_service_restart_rebuilds_states(lab: Lab):
    # How fast (target <= 2 s) is benchmarks/bench_health.py's figure; this test checks that the
    # restarted health service knows every instance again, and that nothing else restarted.
    instances = {"broker-1", "calculator-1", "calculator-2"}
    wait_until(lambda: all_healthy(lab, instances | {"health-1"}), WAIT_S, "every instance HEALTHY")
    old = lab.kill("health")
    wait_until(lambda: all_healthy(lab, instances), WAIT_S, "states rebuilt after the health service restart")

    # The new health service answers as soon as it serves: the supervisor may still be confirming
    # its READY line with a health check (STARTING) for a moment.
    def all_running():
        status = lab.status()
        return (status,) if (status.state == "RUNNING").all() else None

    (status,) = wait_until(all_running, WAIT_S, "every process RUNNING")
    assert int(status[status.instance == "health-1"].pid.iloc[0]) != old["pid"]
    # Nothing else restarted.
    assert set(status[status.restarts > 0].instance) == {"health-1"}


def test_health_views_frames_and_errors(lab: Lab):
    wait_until(lambda: all_healthy(lab, {"calculator-1", "calculator-2"}), WAIT_S, "calculators HEALTHY")
    df = lab.health()
    assert list(df.columns) == HEALTH_COLUMNS
    assert set(df.instance) >= {"broker-1", "health-1", "calculator-1", "calculator-2"}
    assert df.since.notna().all()
    assert lab.health.check("calculator").state == 2
    with pytest.raises(ServiceNotFound, match="known services: .*calculator"):
        lab.health.history("calculatr")
    with pytest.raises(ServiceNotFound, match="calculator-1"):
        lab.health.check("calculator", "calculator-7")


def test_graceful_health_service_restart_keeps_every_instance_in_discovery(lab: Lab):
    instances = {"broker-1", "calculator-1", "calculator-2"}
    wait_until(lambda: all_healthy(lab, instances | {"health-1"}), WAIT_S, "every instance HEALTHY")
    sampler = LookupSampler(lab)
    sampler.start()
    try:
        lab.restart("health")
        started = time.monotonic()
        wait_until(lambda: all_healthy(lab, instances), WAIT_S, "states rebuilt after the graceful restart")
        wait_until(
            lambda: sampler.samples and sampler.samples[-1][0] - started >= SAMPLED_AFTER_RESTART_S,
            WAIT_S,
            f"lookups sampled for {SAMPLED_AFTER_RESTART_S} s after the restart",
        )
    finally:
        sampler.halt.set()
        sampler.join(5)
    assert sampler.samples
    # The stopping health service saw every report stream end; that must not hide anyone.
    assert all(set(pids) == {"calculator-1", "calculator-2"} for _, pids in sampler.samples)


@pytest.mark.parametrize("language", CALCULATOR_LANGUAGES)
def test_slow_calls_turn_the_pushed_state_degraded_and_calm_turns_it_healthy(lab_factory, language: str):
    """The agent's DEGRADED rule (p99 > 250 ms over >= 20 calls), pushed, with its reason and recovery."""
    lab = calculator_lab(lab_factory, "health-degraded", language)
    wait_until(lambda: all_healthy(lab, {"calculator-1"}), WAIT_S, "calculator-1 HEALTHY")
    seen: list[HealthChange] = []
    watch = lab.health.watch(seen.append)
    client = CalculatorLab(lab).client(timeout_s=5)
    try:
        wait_until(lambda: watch.connected.is_set(), WAIT_S, "the health watch to connect")
        fid = lab.inject("calculator", "delay", duration_s=60, delay_ms=SLOW_MS)

        def slow_call() -> bool:
            started = time.monotonic()
            client.add(1, 1)
            return time.monotonic() - started >= SLOW_MS / 1000

        wait_until(slow_call, WAIT_S, "the delay to reach the agent")
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: client.add(i, 1), range(SLOW_CALLS)))

        def pushed(state: str) -> list[HealthChange]:
            return [
                c for c in seen if c.instance == "calculator-1" and c.new_state == state and not c.snapshot
            ]

        degraded = wait_until(lambda: pushed("DEGRADED"), WAIT_S, "calculator-1 DEGRADED")[0]
        assert degraded.source == "push", degraded
        assert "p99 latency" in degraded.reason and "above 250 ms" in degraded.reason, degraded.reason
        assert lab.chaos.clear(fid) == 1
        wait_until(
            lambda: client.add(1, 1) is not None and pushed("HEALTHY"),
            RECOVER_WAIT_S,
            "calculator-1 HEALTHY again",
        )
        healthy = pushed("HEALTHY")[-1]
        assert healthy.reason.startswith("recovered:"), healthy.reason
    finally:
        watch.stop()
        client.close()
