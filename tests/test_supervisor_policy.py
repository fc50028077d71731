"""Restart policy and lease/linger rules with a fake clock: no processes, no sleeping."""

from __future__ import annotations

import signal

import pytest

from runtime.supervisor.config import ServiceSpec, StartLimit
from runtime.supervisor.leases import LeaseTable, UnknownLease
from runtime.supervisor.policy import Action, RestartTracker, backoff_delay
from runtime.supervisor.service import parse_signal


def _spec(**kw: object) -> ServiceSpec:
    return ServiceSpec(name="calc", command=("x",), **kw)  # type: ignore[arg-type]


def _crash_loop(tracker: RestartTracker, *, run_s: float, times: int, start: float = 0.0, code: int = 1):
    """Start, run `run_s`, exit with `code`, restart after the decided delay; `times` exits."""
    now, out = start, []
    tracker.record_start(now)
    for _ in range(times):
        now += run_s
        decision = tracker.decide(exit_code=code, now=now)
        out.append(decision)
        if decision.action is not Action.RESTART:
            break
        now += decision.delay_s
        tracker.record_start(now)
    return out


def test_backoff_grows_and_is_capped() -> None:
    spec = _spec(restart_delay_s=0.5, backoff_factor=2.0, backoff_max_s=3.0)
    assert [backoff_delay(spec, n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_always_restarts_with_backoff_and_rule_text() -> None:
    tracker = RestartTracker(_spec(restart_delay_s=0.5, start_limit=StartLimit(starts=100, within_s=30)))
    decisions = _crash_loop(tracker, run_s=0.1, times=3)
    assert [d.action for d in decisions] == [Action.RESTART] * 3
    assert [d.delay_s for d in decisions] == [0.5, 1.0, 2.0]
    assert decisions[1].rule == "restart=always, delay 1s (attempt 2)"


def test_on_failure_restarts_only_failures() -> None:
    tracker = RestartTracker(_spec(restart="on-failure"))
    tracker.record_start(0.0)
    assert tracker.decide(exit_code=0, now=1.0).action is Action.EXIT
    assert "exit code 0" in tracker.decide(exit_code=0, now=1.0).rule
    assert tracker.decide(exit_code=3, now=1.0).action is Action.RESTART
    assert tracker.decide(exit_code=-9, now=1.0).action is Action.RESTART  # killed by a signal


def test_never_does_not_restart() -> None:
    tracker = RestartTracker(_spec(restart="never"))
    tracker.record_start(0.0)
    decision = tracker.decide(exit_code=1, now=1.0)
    assert decision.action is Action.EXIT
    assert decision.rule.startswith("restart=never")


def test_start_limit_goes_fatal() -> None:
    tracker = RestartTracker(
        _spec(restart_delay_s=0.1, backoff_factor=1.0, start_limit=StartLimit(starts=3, within_s=10))
    )
    decisions = _crash_loop(tracker, run_s=0.1, times=10)
    assert [d.action for d in decisions] == [Action.RESTART, Action.RESTART, Action.FATAL]
    assert "start limit 3 in 10s" in decisions[-1].rule


def test_starts_outside_the_window_do_not_count() -> None:
    # One start every 4 s with a window of 10 s: never more than 3 starts in the window.
    tracker = RestartTracker(
        _spec(restart_delay_s=2.0, backoff_factor=1.0, start_limit=StartLimit(starts=3, within_s=10)),
        stable_run_s=100,
    )
    decisions = _crash_loop(tracker, run_s=2.0, times=8)
    assert all(d.action is Action.RESTART for d in decisions)


def test_stable_run_resets_the_failure_count() -> None:
    tracker = RestartTracker(
        _spec(restart_delay_s=0.5, start_limit=StartLimit(starts=100, within_s=1000)), stable_run_s=10.0
    )
    decisions = _crash_loop(tracker, run_s=0.1, times=3)
    assert decisions[-1].attempt == 3
    # Next run lasts 12 s (>= stable_run_s): backoff starts again from attempt 1.
    now = 100.0
    tracker.record_start(now)
    decision = tracker.decide(exit_code=1, now=now + 12.0)
    assert (decision.attempt, decision.delay_s) == (1, 0.5)


def test_manual_reset_forgets_history() -> None:
    tracker = RestartTracker(_spec(start_limit=StartLimit(starts=1, within_s=60)))
    tracker.record_start(0.0)
    assert tracker.decide(exit_code=1, now=0.1).action is Action.FATAL
    tracker.reset()
    tracker.record_start(1.0)
    assert tracker.decide(exit_code=1, now=1.1).action is Action.FATAL  # 1 start allowed, still one
    tracker = RestartTracker(_spec(start_limit=StartLimit(starts=2, within_s=60)))
    tracker.record_start(0.0)
    assert tracker.decide(exit_code=1, now=0.1).action is Action.RESTART


def test_lab_without_lease_stops_after_linger() -> None:
    table = LeaseTable(linger_s=5.0, now=0.0)
    assert not table.should_stop(4.9)
    assert table.should_stop(5.0)


def test_linger_of_an_unclaimed_lab_counts_from_publishing() -> None:
    # Start-up took 3 s of a 2 s linger: nobody could take a lease yet, so the lab must not stop.
    table = LeaseTable(linger_s=2.0, now=0.0)
    table.published(now=3.0)
    assert not table.should_stop(4.9)
    assert table.should_stop(5.0)
    lease = table.acquire("kernel 1", ttl_s=10.0, now=0.5)
    table.published(now=3.0)  # a lease taken already: publishing changes nothing
    assert table.count == 1 and not table.should_stop(10.4)
    assert lease.expires_at == 10.5


def test_lease_keeps_lab_alive_and_linger_starts_at_expiry() -> None:
    table = LeaseTable(linger_s=5.0, now=0.0)
    lease = table.acquire("kernel 1", ttl_s=2.0, now=1.0)
    assert table.count == 1
    table.renew(lease.lease_id, now=2.5)  # now expires at 4.5
    assert not table.should_stop(4.0)
    assert not table.should_stop(9.4)  # idle since 4.5
    assert table.count == 0
    assert table.should_stop(9.5)
    with pytest.raises(UnknownLease):
        table.renew(lease.lease_id, now=9.6)


def test_release_and_reacquire_within_linger() -> None:
    table = LeaseTable(linger_s=5.0, now=0.0)
    lease = table.acquire("cli up", ttl_s=10.0, now=0.0)
    assert table.release(lease.lease_id, now=1.0) == 0
    assert not table.should_stop(5.9)
    table.acquire("kernel 2", ttl_s=10.0, now=5.9)  # a kernel restart re-attaches within linger
    assert not table.should_stop(10.0)
    assert not table.should_stop(20.8)  # the new lease expired at 15.9
    assert table.should_stop(21.0)


@pytest.mark.parametrize("name", ["SIGKILL", "KILL", "kill", "9", " sigkill "])
def test_signal_names(name: str) -> None:
    assert parse_signal(name) == signal.SIGKILL


@pytest.mark.parametrize("name", ["SIGNOPE", "99", "-1"])
def test_bad_signal_names(name: str) -> None:
    with pytest.raises(ValueError, match="unknown signal"):
        parse_signal(name)


@pytest.mark.parametrize("name", ["", "  "])
def test_unset_signal_is_an_error_not_sigterm(name: str) -> None:
    with pytest.raises(ValueError, match="signal is not set"):
        parse_signal(name)
