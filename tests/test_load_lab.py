"""Load tests in a real lab: supervisor, broker, two Python calculators and the load generator."""

from __future__ import annotations

import time

import pytest
from waiting import wait_until

from runtime.client import auth
from runtime.errors import ClientError, ServiceNotFound
from runtime.identity import ENV_LOAD_MAX_ACTIVE_TESTS
from runtime.lab import Lab
from runtime.lab.load import ACTIVE_COLUMNS, METRIC_COLUMNS
from runtime.services.load.settings import DEFAULT_SETTINGS as LIMITS
from runtime.v1 import broker_pb2, broker_pb2_grpc

WAIT_S = 10.0
FREEZE_S = 0.5  # how long calculator-1 is SIGSTOPped: the scenario, not a wait for an event


@pytest.fixture
def lab(lab_factory) -> Lab:
    return lab_factory("load")


def test_rate_is_held_and_the_test_ends_by_itself(lab: Lab):
    test = lab.start_load("CalculatorService", rps=200, duration_s=2)
    assert test.test_id.startswith("load-")
    active = lab.load.tests()
    assert list(active.columns) == ACTIVE_COLUMNS
    assert list(active.test_id) == [test.test_id]
    assert test.wait(10), "the test did not end by itself"
    assert test.error is None
    frame = test.frame
    assert list(frame.columns) == METRIC_COLUMNS
    assert len(frame) >= 1
    assert frame.rps.iloc[0] == pytest.approx(200, rel=0.05), frame
    summary = test.summary()
    assert summary.total_requests == 400
    assert summary.total_failed == 0, summary.error_counts
    assert summary.achieved_rps == pytest.approx(200, rel=0.05)  # the bench holds it to 1 %
    assert 0 < summary.latency_p50_ms <= summary.latency_p99_ms <= summary.latency_p999_ms
    assert summary.min_latency_ms <= summary.avg_latency_ms <= summary.max_latency_ms
    assert test.final is not None and test.final.final
    assert lab.load.tests().empty


def test_stop_load_answers_the_summary_and_the_caller_leaving_ends_a_test(lab: Lab):
    test = lab.start_load("calculator", rps=100, duration_s=60)
    wait_until(lambda: len(test.frame) >= 1, WAIT_S, "the first metrics")
    started = time.monotonic()
    summary = test.stop()
    assert time.monotonic() - started < 2.0
    assert test.done
    assert 90 <= summary.total_requests <= 250, summary
    assert summary.total_failed == 0
    assert test.summary().total_requests == summary.total_requests  # kept after the end

    other = lab.start_load("calculator", rps=50, duration_s=60)
    other.close()  # the notebook lets go of the stream: the service stops the test
    wait_until(lambda: lab.load.tests().empty, WAIT_S, "the abandoned test to end")


def test_latency_counts_from_the_intended_send_time(lab: Lab):
    """calculator-1 freezes for 0.5 s: the requests due meanwhile wait, and their latency shows it."""
    test = lab.start_load("calculator", rps=200, duration_s=2, timeout_ms=3000)
    # The scenario's timeline, not a wait for an event: the load service reports per second only,
    # and the freeze must fall inside this 2 s run.
    time.sleep(0.6)
    lab.kill("calculator", 1, signal="SIGSTOP")
    time.sleep(FREEZE_S)
    lab.kill("calculator", 1, signal="SIGCONT")
    assert test.wait(10)
    s = test.summary()
    assert s.total_failed == 0, s.error_counts
    # ~1/8 of all requests (half of those due during the pause) waited up to 0.5 s.
    assert s.latency_p99_ms >= 350, s
    assert s.latency_p50_ms < 50, s
    # The sender was never held up by the slow replies (open loop): its schedule lag stayed far
    # below the 500 ms freeze (a sender waiting for replies would show about that much).
    assert test.final is not None and test.final.send_lag_p99_ms < 250, test.final


def test_the_frame_after_a_run_draws_no_rate_from_a_sliver_of_a_second(lab: Lab):
    """Every row's rate is a rate over at least half a second: no end-of-test spike on the chart.

    A row of the sends after the last tick used to divide by a few microseconds (a notebook
    chart drew about 1,000,000 sent/s at the last second and flattened the whole run).
    """
    test = lab.start_load("calculator", rps=400, duration_s=3)
    assert test.wait(15)
    frame = test.frame
    assert len(frame) >= 2, frame
    assert frame.rps.max() <= 400 * 1.5, frame[["second", "sent", "rps"]]
    assert test.final is not None and test.final.current_rps == pytest.approx(400, rel=0.05), test.final
    assert test.final.requests_sent == test.summary().total_requests == 1200


def test_failover_when_an_instance_is_killed_mid_test(lab: Lab):
    test = lab.start_load("calculator", rps=200, duration_s=3)
    wait_until(lambda: len(test.frame) >= 1, WAIT_S, "the first second of load")
    lab.kill("calculator", 1)  # SIGKILL
    assert test.wait(10)
    s = test.summary()
    assert s.total_requests == 600
    # Errors are counted (the calls that were on the dead instance), and the rest succeeded on the other.
    assert s.total_failed <= 60, s.error_counts
    assert set(s.error_counts) <= {"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"}, s.error_counts
    last = test.frame.iloc[-1]
    assert last.rps == pytest.approx(200, rel=0.1), test.frame


def test_bad_input_gets_the_right_status(lab: Lab):
    for kwargs, needle in [
        ({"rps": 0}, "requests_per_second=0"),
        ({"rps": LIMITS.max_rps + 1}, f"between 1 and {LIMITS.max_rps}"),
        ({"duration_s": 10**6}, "duration_seconds"),
        ({"concurrency": 10**6}, "concurrent_clients"),
        ({"method": "Sqrt"}, "use one of Add, Subtract, Multiply, Divide"),
        ({"payload": {"c": 1}}, "payload field"),
    ]:
        with pytest.raises(ClientError, match=needle) as err:
            lab.start_load("calculator", **kwargs)
        assert err.value.code == "INVALID_ARGUMENT"
    with pytest.raises(ServiceNotFound, match="no instances of NoSuchService"):
        lab.start_load("NoSuchService")
    # The broker's API is learned through reflection like any other; its stream is no load target.
    with pytest.raises(ClientError, match="no unary method 'WatchServices'") as err:
        lab.start_load("broker", method="WatchServices")
    assert err.value.code == "INVALID_ARGUMENT"

    running = [lab.start_load("calculator", rps=1, duration_s=30) for _ in range(LIMITS.max_active_tests)]
    try:
        with pytest.raises(ClientError, match=f"{ENV_LOAD_MAX_ACTIVE_TESTS}={LIMITS.max_active_tests}") as err:
            lab.start_load("calculator", rps=1, duration_s=30)
        assert err.value.code == "RESOURCE_EXHAUSTED"
        assert len(lab.load.tests()) == LIMITS.max_active_tests
    finally:
        for t in running:
            t.stop()
    assert lab.load.tests().empty


def test_requests_held_back_by_the_concurrency_bound_expire_and_are_counted(lab: Lab):
    """Both calculators frozen, one slot: the backlog does not grow without bound, nothing is omitted."""
    test = lab.start_load("calculator", rps=100, duration_s=2, concurrency=1, timeout_ms=200)
    time.sleep(0.5)  # the scenario's timeline (the freeze falls inside this 2 s run)
    for i in (1, 2):
        lab.kill("calculator", i, signal="SIGSTOP")
    time.sleep(0.6)  # the scenario: both frozen for three 200 ms deadlines
    for i in (1, 2):
        lab.kill("calculator", i, signal="SIGCONT")
    assert test.wait(10)
    s = test.summary()
    # Every scheduled request is accounted for: on the wire (then OK or failed) or expired unsent.
    assert s.total_requests + s.expired_before_send == 200
    assert s.total_succeeded + s.total_failed == s.total_requests
    assert s.achieved_rps <= 100 * s.total_requests / 200 * 1.05  # the rate counts only what was sent
    assert s.error_counts.get("DEADLINE_EXCEEDED", 0) + s.expired_before_send >= 40, s.error_counts
    assert s.max_latency_ms >= 200
    assert test.final is not None and test.final.send_lag_p99_ms >= 100  # held back, and it says so


def test_only_instances_on_127_0_0_1_are_ever_loaded(lab: Lab):
    remote = broker_pb2.ServiceInstance(
        service_name="remote-calc",
        instance_id="remote-calc-1",
        address="192.0.2.1:50051",  # TEST-NET-1: must never see a packet from us
        grpc_services=["calculator.v1.CalculatorService"],
    )
    with auth.insecure_channel(lab.broker_address, token=lab.token) as ch:
        broker = broker_pb2_grpc.BrokerServiceStub(ch)
        broker.Register(broker_pb2.RegisterRequest(instance=remote, ttl_ms=30_000), timeout=5)
        with pytest.raises(
            ServiceNotFound, match=r"no instances of remote-calc on 127\.0\.0\.1 \(1 elsewhere"
        ):
            lab.start_load("remote-calc", rps=10, duration_s=1)
        # Beside local instances, a remote one is skipped: every call goes to 127.0.0.1 and succeeds.
        stray = broker_pb2.ServiceInstance()
        stray.CopyFrom(remote)
        stray.service_name, stray.instance_id = "calculator", "calculator-remote"
        broker.Register(broker_pb2.RegisterRequest(instance=stray, ttl_ms=30_000), timeout=5)
        assert "calculator-remote" in set(lab.lookup("calculator").instance)
        s = lab.start_load("calculator", rps=100, duration_s=1).summary()
        assert (s.total_requests, s.total_failed) == (100, 0), s.error_counts
        for instance_id in ("remote-calc-1", "calculator-remote"):
            broker.Deregister(broker_pb2.DeregisterRequest(instance_id=instance_id), timeout=5)
