"""Chaos in a real lab: every fault kind seen at a client, TTL, dead-man switch, CRASH, bad input.

The tests about what an agent does with a fault run against the Python and the TypeScript
calculator (``[python]``, ``[typescript]``; tests/calculator_languages.py).
"""

from __future__ import annotations

import threading
import time

import grpc
import psutil
import pytest
from calculator_languages import CALCULATOR_LANGUAGES, calculator_lab
from waiting import wait_until

from calculator.lab import CalculatorLab
from calculator.v1 import calculator_pb2, calculator_pb2_grpc
from runtime.client import auth
from runtime.errors import ClientError, ServiceNotFound
from runtime.lab import Lab
from runtime.lab.chaos import CHAOS_GRPC_SERVICE
from runtime.services.chaos.rules import MAX_ACTIVE_FAULTS
from runtime.v1 import chaos_pb2, chaos_pb2_grpc

WAIT_S = 10.0
DEAD_MAN_LIMIT_S = 1.0


@pytest.fixture
def lab(request: pytest.FixtureRequest, lab_factory) -> Lab:
    return calculator_lab(lab_factory, "chaos", getattr(request, "param", "python"))


both_languages = pytest.mark.parametrize("lab", CALCULATOR_LANGUAGES, indirect=True)


def instance_row(lab: Lab, instance: str):
    df = lab.lookup("calculator")
    return df[df.instance == instance].iloc[0]


class Direct:
    """Calls one instance straight (no discovery, no retry): what that instance does is what we see."""

    def __init__(self, lab: Lab, instance: str) -> None:
        self.channel = auth.insecure_channel(instance_row(lab, instance).address, token=lab.token)
        self.stub = calculator_pb2_grpc.CalculatorServiceStub(self.channel)

    def add(self, timeout_s: float = 5.0) -> tuple[float, grpc.RpcError | None]:
        started = time.monotonic()
        try:
            self.stub.Add(calculator_pb2.AddRequest(a=2, b=3), timeout=timeout_s)
            err = None
        except grpc.RpcError as exc:
            err = exc
        return time.monotonic() - started, err

    def close(self) -> None:
        self.channel.close()


@both_languages
def test_delay_spikes_latency_short_deadlines_time_out_and_clear_restores(lab: Lab) -> None:
    client = CalculatorLab(lab).client(timeout_s=5)
    client.add(1, 1)
    fid = lab.inject("calculator", "delay", duration_s=30, delay_ms=500)
    assert list(lab.chaos.faults().fault_id) == [fid]

    def timed() -> float:
        started = time.monotonic()
        client.add(2, 3)
        return time.monotonic() - started

    wait_until(lambda: timed() >= 0.5, 3, "the delay to reach the agents")
    assert min(timed() for _ in range(4)) >= 0.5  # both instances, round robin
    with pytest.raises(ClientError) as info:
        CalculatorLab(lab).client(timeout_s=0.2).add(2, 3)
    assert info.value.code == "DEADLINE_EXCEEDED"
    assert lab.chaos.clear(fid) == 1
    wait_until(lambda: timed() < 0.1, 3, "fast calls after clear")
    assert max(timed() for _ in range(4)) < 0.25
    assert lab.chaos.faults().empty
    client.close()


@both_languages
def test_error_injection_fails_calls_and_logs_errors_packet_loss_is_retried(lab: Lab) -> None:
    direct = Direct(lab, "calculator-1")
    try:
        fid = lab.inject("calculator", "error_inject", instance=1, error_rate=1.0)
        err = wait_until(lambda: direct.add()[1], 3, "injected errors")
        assert err.code() == grpc.StatusCode.UNAVAILABLE and err.details() == f"injected fault {fid}"

        def logged():
            df = lab.logs(service="calculator", level="ERROR", search="injected error")
            return not df.empty and set(df.instance) == {"calculator-1"}

        wait_until(logged, 5, "the injected errors in the calculator's logs")
        lab.chaos.clear(fid)
        wait_until(lambda: direct.add()[1] is None, 3, "calls succeed after clear")

        lab.inject("calculator", "packet_loss", instance="calculator-1", packet_loss_pct=50)
        wait_until(lambda: direct.add()[1] is not None, 3, "the first dropped call")
        lost = sum(direct.add()[1] is not None for _ in range(60))
        assert 10 <= lost <= 50, f"{lost} of 60 calls dropped at 50 % loss"
        # Through discovery, a dropped call is retried once on the next instance (calculator-2).
        client = CalculatorLab(lab).client()
        for _ in range(30):
            client.add(2, 3)
        client.close()
        assert lab.chaos.clear() == 1
    finally:
        direct.close()


@both_languages
def test_cpu_hog_and_memory_leak_show_in_the_process_and_go_on_clear(lab: Lab) -> None:
    proc = psutil.Process(int(instance_row(lab, "calculator-2").pid))
    threads = proc.num_threads()
    fid = lab.inject("calculator", "cpu_hog", instance=2, cpu_threads=2)
    wait_until(lambda: proc.num_threads() >= threads + 2, WAIT_S, "two busy threads")
    cpu0 = sum(proc.cpu_times()[:2])
    # An idle calculator uses a few ms of CPU per second; two busy threads close to two cores
    # (less on a shared, loaded machine: hence a wait, not a fixed window).
    wait_until(lambda: sum(proc.cpu_times()[:2]) - cpu0 >= 0.5, 5, "the hog threads to burn 0.5 s of CPU")
    lab.chaos.clear(fid)
    wait_until(lambda: proc.num_threads() <= threads, WAIT_S, "the busy threads to stop")

    rss = proc.memory_info().rss
    fid = lab.inject("calculator", "memory_leak", instance=2, memory_mb=128)
    wait_until(lambda: proc.memory_info().rss - rss >= 100 * 2**20, WAIT_S, "RSS to grow by ~128 MiB")
    lab.chaos.clear(fid)
    wait_until(lambda: proc.memory_info().rss - rss < 40 * 2**20, WAIT_S, "the leaked memory to be released")


@both_languages
def test_faults_expire_by_ttl(lab: Lab) -> None:
    direct = Direct(lab, "calculator-1")
    try:
        lab.inject("calculator", "delay", duration_s=1, delay_ms=300)
        wait_until(lambda: direct.add()[0] >= 0.3, 3, "the delay")
        wait_until(lambda: direct.add()[0] < 0.1, 3, "the delay to expire")
        assert lab.chaos.faults().empty
    finally:
        direct.close()


@both_languages
def test_every_fault_kind_is_applied_and_expires_by_ttl(lab: Lab) -> None:
    direct = Direct(lab, "calculator-1")
    proc = psutil.Process(int(instance_row(lab, "calculator-1").pid))
    try:
        for kind, params in (
            ("error_inject", {"error_rate": 1.0}),
            ("packet_loss", {"packet_loss_pct": 100}),
        ):
            lab.inject("calculator", kind, instance=1, duration_s=1, **params)
            wait_until(lambda: direct.add()[1] is not None, 3, f"{kind} applied")
            wait_until(lambda: direct.add()[1] is None, 5, f"{kind} expired")
        threads = proc.num_threads()
        lab.inject("calculator", "cpu_hog", instance=1, duration_s=2, cpu_threads=1)
        wait_until(lambda: proc.num_threads() > threads, WAIT_S, "a busy thread")
        wait_until(lambda: proc.num_threads() <= threads, WAIT_S, "the busy thread gone at its TTL")
        rss = proc.memory_info().rss
        lab.inject("calculator", "memory_leak", instance=1, duration_s=2, memory_mb=64)
        wait_until(lambda: proc.memory_info().rss - rss >= 48 * 2**20, WAIT_S, "RSS to grow by ~64 MiB")
        wait_until(
            lambda: proc.memory_info().rss - rss < 24 * 2**20, WAIT_S, "the memory released at its TTL"
        )
        assert lab.chaos.faults().empty
    finally:
        direct.close()


@both_languages
def test_dead_man_switch_drops_faults_when_the_chaos_service_dies(lab: Lab) -> None:
    direct = Direct(lab, "calculator-1")
    try:
        lab.inject("calculator", "delay", delay_ms=300)  # no TTL: only the dead-man switch ends it
        wait_until(lambda: direct.add()[0] >= 0.3, 3, "the delay")
        killed = lab.kill("chaos")
        killed_at = time.monotonic()
        wait_until(lambda: direct.add()[0] < 0.1, 3, "the agent to drop the fault")
        took = time.monotonic() - killed_at
        assert took <= DEAD_MAN_LIMIT_S, f"faults dropped {took:.2f} s after the chaos service died"
        lab.wait_restarted("chaos-1", killed["pid"])
        assert lab.chaos.faults().empty  # the new chaos service starts with none
    finally:
        direct.close()


def test_crash_goes_through_the_supervisor_which_restarts(lab: Lab) -> None:
    before = lab.status("calculator").set_index("instance").pid.to_dict()
    chaos = chaos_pb2_grpc.ChaosServiceStub(lab._channel(CHAOS_GRPC_SERVICE))
    status = chaos.InjectFault(
        chaos_pb2.FaultConfig(
            target_service="calculator", type=chaos_pb2.CRASH, target_instance="calculator-1"
        ),
        timeout=5,
    )
    assert not status.active and f"calculator-1 (pid {before['calculator-1']})" in status.message
    lab.wait_restarted("calculator-1", before["calculator-1"])
    events = lab.events("calculator")
    assert events[(events.instance == "calculator-1")].reason.str.contains("SIGKILL").any()
    # No instance: every instance of the service.
    now = lab.status("calculator").set_index("instance").pid.to_dict()
    lab.inject("calculator", "crash")
    for instance, pid in now.items():
        lab.wait_restarted(instance, pid)
    with pytest.raises(ClientError, match="does not crash itself") as info:
        lab.inject("chaos", "crash")
    assert info.value.code == "FAILED_PRECONDITION"
    assert lab.chaos.faults().empty  # a crash is an event, not an active fault


def test_bad_input_gets_the_right_status_and_a_clear_message(lab: Lab) -> None:
    pids = lab.status().set_index("instance").pid.to_dict()
    chaos = chaos_pb2_grpc.ChaosServiceStub(lab._channel(CHAOS_GRPC_SERVICE))

    def code_of(config: chaos_pb2.FaultConfig) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.RpcError) as info:
            chaos.InjectFault(config, timeout=5)
        return info.value.code(), info.value.details()

    def cfg(
        ftype: int | None, duration: int = 0, service: str = "calculator", **params
    ) -> chaos_pb2.FaultConfig:
        c = chaos_pb2.FaultConfig(
            target_service=service, duration_seconds=duration, params=chaos_pb2.FaultParams(**params)
        )
        if ftype is not None:
            c.type = ftype  # type: ignore[assignment]
        return c

    invalid = grpc.StatusCode.INVALID_ARGUMENT
    code, details = code_of(cfg(None))
    assert code == invalid and "type is not set" in details, details
    assert "duration_seconds is -5" in code_of(cfg(chaos_pb2.DELAY, -5, delay_ms=10))[1]
    for config, words in [
        (cfg(chaos_pb2.PACKET_LOSS, packet_loss_pct=101), "0 to 100"),
        (cfg(chaos_pb2.ERROR_INJECT, error_rate=-0.1), "0 to 1"),
        (cfg(chaos_pb2.DELAY, delay_ms=60_000), "MAX_DELAY_MS"),
        (cfg(chaos_pb2.CPU_HOG, cpu_threads=64), "MAX_CPU_THREADS"),
        (cfg(chaos_pb2.MEMORY_LEAK, memory_mb=1 << 20), "MAX_MEMORY_MB"),
    ]:
        code, details = code_of(config)
        assert code == invalid and words in details, details
    code, details = code_of(cfg(chaos_pb2.CRASH, service="database"))
    assert code == grpc.StatusCode.NOT_FOUND
    assert details == "no lab service named 'database'; the lab runs: broker, calculator, chaos, logger"
    with pytest.raises(ServiceNotFound, match="has no instance 'calculator-9'"):
        lab.inject("calculator", "crash", instance=9)
    # An unset type never crashed anything.
    assert lab.status().set_index("instance").pid.to_dict() == pids

    ids = [lab.inject("calculator", "error_inject", error_rate=0.0) for _ in range(MAX_ACTIVE_FAULTS)]
    with pytest.raises(ClientError, match=f"the cap is {MAX_ACTIVE_FAULTS}") as info:
        lab.inject("calculator", "error_inject", error_rate=0.0)
    assert info.value.code == "RESOURCE_EXHAUSTED"
    assert lab.chaos.clear("fault-nosuch") == 0
    assert lab.chaos.clear(ids[0]) == 1
    assert lab.chaos.clear() == MAX_ACTIVE_FAULTS - 1


def test_chaos_panel_buttons_and_live_chart(lab: Lab) -> None:
    from widgets.chaos_view import ChaosPanel

    probe = CalculatorLab(lab).latency_probe()
    panel = ChaosPanel(lab, delay_ms=300, fault_s=10, probe=probe)
    assert panel.figure.layout.title.text == "calculator: latency of Add(1, 2) as a client sees it"
    panel.show()
    try:
        assert panel.probe is not None
        wait_until(lambda: panel.redraws > 0, WAIT_S, "the first redraw")
        panel.inject_latency()
        wait_until(
            lambda: (panel.probe.frame().latency_ms >= 300).any(), WAIT_S, "a slow sample on the chart"
        )
        assert "cleared" in panel.clear_all()
        old = int(lab.status("calculator").set_index("instance").pid["calculator-1"])
        panel.instance.value = "calculator-1"  # the picker: "(all)" would crash every instance
        assert "calculator-1 crashed" in panel.crash()
        lab.wait_restarted("calculator-1", old)
        assert len(panel.figure.data[0].x) > 0
    finally:
        panel.stop()
    assert not panel.probe.running
    assert probe.client._channel is None  # stopping the panel closed the probe's client
    names = {t.name for t in threading.enumerate()}
    assert not names & {"chaos-latency-probe", "chaos-panel-redraw"}
