"""Closed loop beside open loop: the load generator's two modes under the same freeze.

The pure parts (the mode in the plan, the pacer, the Lab's ``mode=`` argument) first, then a
real lab (supervisor, broker, two Python calculators, the load generator): both modes run at
once against the same instances while calculator-1 is SIGSTOPped for a second. The open loop
keeps sending on schedule and its p99 holds the freeze; the closed-loop client waits on the frozen
call, sends (almost) nothing meanwhile, and reports a p99 of a few milliseconds: coordinated
omission, what a learner sees in chapter 13.
"""

from __future__ import annotations

import time

import pytest

from runtime.errors import ClientError, UsageError
from runtime.lab import Lab
from runtime.lab.load import LoadTest, load_config
from runtime.services.load import schedule as load_schedule
from runtime.services.load.closed_loop import Pacer
from runtime.services.load.schedule import LoadPlan, PlanError
from runtime.v1 import load_pb2
from widgets.load_view import compare_figure

RPS = 100
DURATION_S = 4
FREEZE_S = 1.0  # how long calculator-1 is SIGSTOPped: the scenario, not a wait for an event
FREEZE_AT_S = 1.2  # into the run: after the first metrics, well before the end


def config(**kw) -> load_pb2.LoadConfig:
    base = {"target_service": "CalculatorService", "requests_per_second": 100, "duration_seconds": 2}
    return load_pb2.LoadConfig(**{**base, **kw})


# -- pure --------------------------------------------------------------------------------------


def test_unset_mode_is_open_loop_and_closed_loop_defaults_to_one_client():
    plan = LoadPlan.from_config(config())
    assert (plan.mode, plan.closed_loop) == (load_pb2.LOAD_MODE_OPEN_LOOP, False)
    assert plan.concurrency == load_schedule.DEFAULT_CONCURRENCY
    closed = LoadPlan.from_config(config(mode=load_pb2.LOAD_MODE_CLOSED_LOOP))
    assert closed.closed_loop and closed.concurrency == load_schedule.DEFAULT_CLOSED_LOOP_CLIENTS == 1
    assert (
        LoadPlan.from_config(config(mode=load_pb2.LOAD_MODE_CLOSED_LOOP, concurrent_clients=8)).concurrency
        == 8
    )


@pytest.mark.parametrize(
    ("kw", "needles"),
    [
        ({"mode": 7}, ["mode=7 is not a LoadMode", "LOAD_MODE_OPEN_LOOP (1)", "LOAD_MODE_CLOSED_LOOP (2)"]),
        ({"mode": -3}, ["mode=-3 is not a LoadMode"]),
        (
            {"mode": load_pb2.LOAD_MODE_CLOSED_LOOP, "concurrent_clients": -1},
            ["concurrent_clients=-1", "0 means 1"],
        ),
    ],
)
def test_a_bad_mode_or_client_count_is_refused_by_name(kw, needles):
    with pytest.raises(PlanError) as err:
        LoadPlan.from_config(config(**kw))
    for needle in needles:
        assert needle in str(err.value)


def test_the_pacer_caps_the_rate_and_never_catches_up():
    p = Pacer(rps=10, start_s=0.0, end_s=2.0)
    slots = [p.take(0.0) for _ in range(3)]
    assert slots == [(0, 0.0), (1, 0.1), (2, pytest.approx(0.2))]
    # A client back from a 1 s stall gets a slot now, not the ten it missed.
    assert p.take(1.3) == (3, 1.3)
    assert p.take(1.3) == (4, pytest.approx(1.4))
    assert p.take(2.5) is None  # the duration is over
    assert p.taken == 5


def test_the_lab_takes_open_or_closed_and_nothing_else():
    assert load_config("calculator", 10, 1).mode == load_pb2.LOAD_MODE_OPEN_LOOP
    assert load_config("calculator", 10, 1, mode="closed").mode == load_pb2.LOAD_MODE_CLOSED_LOOP
    for bad in ("closed-loop", "CLOSED", 2, None):
        with pytest.raises(UsageError, match=r'is not a load mode; use "open" .* or "closed"'):
            load_config("calculator", 10, 1, mode=bad)  # type: ignore[arg-type]


# -- a real lab --------------------------------------------------------------------------------


@pytest.fixture
def lab(lab_factory) -> Lab:
    return lab_factory("load")


def test_closed_loop_hides_the_freeze_that_open_loop_shows(lab: Lab):
    """Same lab, same freeze, both at once: the closed loop's p99 is falsely low."""
    payload = {"a": 1, "b": 2}
    open_test = lab.load.start("calculator", rps=RPS, duration_s=DURATION_S, payload=payload, timeout_ms=3000)
    closed_test = lab.start_load(  # the flat alias takes the mode too
        "calculator",
        rps=RPS,
        duration_s=DURATION_S,
        payload=payload,
        timeout_ms=3000,
        mode="closed",
        concurrency=1,
    )
    active = lab.load.tests().set_index("test_id")
    assert active.loc[open_test.test_id, "mode"] == "open"
    assert active.loc[closed_test.test_id, "mode"] == "closed"
    assert "closed loop" in repr(closed_test)
    # The scenario's timeline, not a wait for an event: the freeze must fall inside both runs.
    time.sleep(FREEZE_AT_S)
    lab.kill("calculator", 1, signal="SIGSTOP")
    time.sleep(FREEZE_S)
    lab.kill("calculator", 1, signal="SIGCONT")
    assert open_test.wait(15) and closed_test.wait(15)
    opened, closed = open_test.summary(), closed_test.summary()
    print(
        f"open: {opened.total_requests} sent, p99 {opened.latency_p99_ms:.1f} ms; closed: "
        f"{closed.total_requests} sent, p99 {closed.latency_p99_ms:.1f} ms, max {closed.max_latency_ms:.0f} ms; "
        f"closed per second: {list(closed_test.frame.sent.diff().fillna(closed_test.frame.sent))}"
    )
    assert opened.total_failed == closed.total_failed == 0, (opened.error_counts, closed.error_counts)

    # Open loop: every scheduled request went out, and half of those due during the freeze went
    # to the frozen instance and waited: its p99 holds most of the freeze.
    assert opened.total_requests == RPS * DURATION_S
    assert opened.latency_p99_ms >= 0.6 * FREEZE_S * 1000, opened
    # Closed loop: its one client sat in the frozen call, so a second's worth of requests was
    # never sent ...
    missing = RPS * DURATION_S - closed.total_requests
    assert missing >= 0.6 * RPS * FREEZE_S, closed
    rows = closed_test.frame
    assert rows.sent.diff().fillna(rows.sent).min() <= 0.5 * RPS, rows  # a second with few sends
    # ... the freeze is one slow call among hundreds of fast ones (its max saw it) ...
    assert closed.max_latency_ms >= 0.6 * FREEZE_S * 1000, closed
    # ... and the p99 on screen is far below the open loop's: the freeze hid from it.
    assert closed.latency_p99_ms < opened.latency_p99_ms / 3, (closed.latency_p99_ms, opened.latency_p99_ms)
    assert lab.load.tests().empty

    # Chapter 13's chart draws exactly this: the closed loop's dip in sends, the two p99 bars.
    fig = compare_figure(
        {"open loop": open_test, "closed loop": closed_test}, freeze=(FREEZE_AT_S, FREEZE_AT_S + FREEZE_S)
    )
    lines = {t.name: t for t in fig.data if t.type == "scatter"}
    bars = [t for t in fig.data if t.type == "bar"]
    assert min(lines["closed loop"].y) <= 0.5 * RPS < min(lines["open loop"].y), (
        lines["closed loop"].y,
        lines["open loop"].y,
    )
    assert [(b.x[0], b.y[0]) for b in bars] == [
        ("open loop", opened.latency_p99_ms),
        ("closed loop", closed.latency_p99_ms),
    ]


def test_a_closed_loop_stops_at_once_and_an_unknown_mode_is_refused(lab: Lab):
    test = lab.start_load("calculator", rps=50, duration_s=60, mode="closed", concurrency=4)
    time.sleep(1.2)  # about a second of closed-loop load (the scenario, not a wait for an event)
    summary = test.stop()
    assert test.done
    assert 30 <= summary.total_requests <= 80, summary  # paced: at most 50 per second in total
    assert summary.total_failed == 0, summary.error_counts
    assert lab.load.tests().empty

    # The Lab refuses a mode it does not know; the service refuses a number it does not know.
    with pytest.raises(UsageError, match="mode='wrk'"):
        lab.start_load("calculator", mode="wrk")
    channel = lab.load._channel()
    with pytest.raises(ClientError, match=r"mode=9 is not a LoadMode") as err:
        LoadTest(
            channel,
            load_pb2.LoadConfig(
                target_service="calculator", requests_per_second=10, duration_seconds=1, mode=9
            ),
        )
    assert err.value.code == "INVALID_ARGUMENT"
