"""The load generator's pure parts: plan limits, the open-loop schedule, the recorder, targets."""

from __future__ import annotations

import pytest

from runtime.lab.load import load_config, summary_series
from runtime.services.load import schedule as load_schedule
from runtime.services.load.histogram import HIGHEST_US, LoadRecorder
from runtime.services.load.schedule import LoadPlan, PlanError, Schedule, parse_payload
from runtime.services.load.settings import DEFAULT_SETTINGS as LIMITS
from runtime.services.load.targets import application_service, target_from_files
from runtime.v1 import load_pb2


def config(**kw) -> load_pb2.LoadConfig:
    base = {"target_service": "CalculatorService", "requests_per_second": 100, "duration_seconds": 2}
    return load_pb2.LoadConfig(**{**base, **kw})


def test_plan_fills_defaults():
    plan = LoadPlan.from_config(config(payload=b'{"a": 1, "b": 2.5}'))
    assert (plan.rps, plan.duration_s) == (100, 2)
    assert plan.concurrency == load_schedule.DEFAULT_CONCURRENCY
    assert plan.timeout_s == load_schedule.DEFAULT_TIMEOUT_MS / 1000
    assert plan.payload == {"a": 1.0, "b": 2.5}


@pytest.mark.parametrize(
    ("kw", "names"),
    [
        ({"requests_per_second": 0}, ["requests_per_second=0", f"{LIMITS.max_rps}"]),
        ({"requests_per_second": 10**6}, ["requests_per_second", f"{LIMITS.max_rps}"]),
        ({"duration_seconds": 0}, ["duration_seconds", f"{LIMITS.max_duration_s}"]),
        ({"duration_seconds": 10**5}, ["duration_seconds", f"{LIMITS.max_duration_s}"]),
        ({"concurrent_clients": -1}, ["concurrent_clients", f"{LIMITS.max_concurrency}"]),
        ({"concurrent_clients": 10**6}, ["concurrent_clients", f"{LIMITS.max_concurrency}"]),
        ({"timeout_ms": 10**7}, ["timeout_ms", f"{LIMITS.max_timeout_ms}"]),
        ({"target_service": " "}, ["target_service"]),
        ({"target_service": "x" * 100_000}, ["target_service is 100000 characters long", "at most 200"]),
        ({"target_role": "r" * 300}, ["target_role is 300 characters long"]),
        ({"payload": b"{nope"}, ["payload is not JSON"]),
        ({"payload": b'{"a": "x"}'}, ["finite numbers"]),
        ({"payload": b"1" * 5000}, ["payload is 5000 bytes"]),
    ],
)
def test_bad_plans_name_the_field_and_its_limit(kw, names):
    with pytest.raises(PlanError) as err:
        LoadPlan.from_config(config(**kw))
    for name in names:
        assert name in str(err.value)


def test_schedule_is_open_loop_and_exact():
    s = Schedule(rps=1000, duration_s=5, start_s=100.0)
    assert s.total == 5000
    assert s.intended(0) == 100.0
    assert s.intended(1000) == pytest.approx(101.0)
    assert s.due_by(99.0) == 0
    assert s.due_by(100.0) == 1
    assert s.due_by(100.0105) == 11
    assert s.due_by(1e9) == 5000


def test_recorder_intervals_and_summary():
    rec = LoadRecorder("t-1")
    rec.begin(0.0)
    for ms in range(1, 101):
        rec.sent(0.0005)
        rec.done(ms / 1000, "" if ms <= 98 else "UNAVAILABLE")
    rec.expired(waited_s=1.5)
    m = rec.interval(now_s=1.0)
    # The expired request never went on the wire: not sent, not in the rate, counted apart.
    assert (m.requests_sent, m.requests_succeeded, m.requests_failed) == (100, 98, 2)
    assert m.expired_before_send == 1
    assert m.current_rps == pytest.approx(100)
    assert m.latency_p50_ms == pytest.approx(51, rel=0.01)
    assert m.latency_p99_ms == pytest.approx(100, rel=0.01)
    assert m.latency_p999_ms == pytest.approx(1500, rel=0.01)  # the expired one waited 1.5 s
    assert dict(m.error_counts) == {"UNAVAILABLE": 2}
    assert m.send_lag_p99_ms == pytest.approx(0.5, rel=0.01)
    empty = rec.interval(now_s=2.0)  # percentiles per interval: nothing ended in this one
    assert (empty.latency_p99_ms, empty.current_rps, empty.requests_sent) == (0, 0, 100)
    final = rec.final(elapsed_s=2.0)
    assert final.final and final.latency_p99_ms == pytest.approx(100, rel=0.01)
    s = rec.summary(elapsed_s=2.0)
    assert (s.total_requests, s.total_succeeded, s.total_failed, s.expired_before_send) == (100, 98, 2, 1)
    assert s.achieved_rps == pytest.approx(50.0)  # what went on the wire, per second
    assert s.min_latency_ms == pytest.approx(1, rel=0.01)
    assert s.max_latency_ms == pytest.approx(1500, rel=0.01)
    assert s.avg_latency_ms == pytest.approx((5050 + 1500) / 101, rel=0.01)
    series = summary_series(s)
    assert series.total_requests == 100 and series.error_counts["UNAVAILABLE"] == 2
    assert series.expired_before_send == 1


def test_recorder_clamps_huge_latencies_instead_of_dropping_them():
    rec = LoadRecorder("t")
    rec.done(10_000.0, "")
    assert rec.latency.total == 1
    assert rec.summary(1.0).max_latency_ms >= HIGHEST_US / 1000 * 0.99


def _calculator_files() -> list[bytes]:
    # What a calculator instance's reflection service answers: its file and the files it imports.
    from calculator.v1 import calculator_pb2

    fd = calculator_pb2.DESCRIPTOR
    return [fd.serialized_pb, *(dep.serialized_pb for dep in fd.dependencies)]


def test_target_from_reflected_descriptors_methods_and_payload():
    target = target_from_files("calculator.v1.CalculatorService", _calculator_files())
    assert target.default_method == "Add" and target.payload_fields == ("a", "b")
    assert target.method("").path == "/calculator.v1.CalculatorService/Add"
    request = target.method("Divide").request({"a": 6})
    assert (request.a, request.b) == (6, 0)
    assert type(request).DESCRIPTOR.full_name == "calculator.v1.DivideRequest"
    with pytest.raises(PlanError, match="use one of Add, Subtract, Multiply, Divide"):
        target.method("Sqrt")
    with pytest.raises(PlanError, match="payload field"):
        target.check_payload({"c": 1})
    with pytest.raises(PlanError, match="does not describe"):
        target_from_files("calculator.v1.Nope", _calculator_files())
    assert application_service(["grpc.health.v1.Health", "calculator.v1.CalculatorService"]) == (
        "calculator.v1.CalculatorService"
    )
    assert application_service(["grpc.health.v1.Health"]) is None
    assert parse_payload(b"") == {}


def test_load_config_from_notebook_arguments():
    c = load_config("CalculatorService", 200, 5, "Multiply", 50, {"a": 2, "b": 4}, 500, "lt-")
    assert (c.requests_per_second, c.duration_seconds, c.concurrent_clients) == (200, 5, 50)
    assert parse_payload(c.payload) == {"a": 2.0, "b": 4.0}
    assert (c.method, c.timeout_ms, c.correlation_prefix) == ("Multiply", 500, "lt-")
