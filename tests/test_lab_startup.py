"""When a lab counts as started (runtime.lab.startup): the decision over scripted process lists."""

from __future__ import annotations

from runtime.lab.startup import all_ready, startup_failure
from runtime.v1 import supervisor_pb2 as pb


def proc(instance: str, state: int, reason: str = "") -> pb.ProcessInfo:
    return pb.ProcessInfo(instance_id=instance, state=state, last_exit_reason=reason)  # type: ignore[arg-type]


def test_running_and_skipped_are_ready_nothing_listed_is_not() -> None:
    assert all_ready(
        [proc("broker-1", pb.PROCESS_STATE_RUNNING), proc("client-rust", pb.PROCESS_STATE_SKIPPED)]
    )
    assert not all_ready([])
    assert not all_ready(
        [proc("broker-1", pb.PROCESS_STATE_RUNNING), proc("calc-1", pb.PROCESS_STATE_STARTING)]
    )
    assert startup_failure([proc("broker-1", pb.PROCESS_STATE_RUNNING)], timed_out=True, timeout_s=5) is None


def test_a_dead_instance_fails_at_once_a_slow_one_only_when_time_is_up() -> None:
    starting = proc("calc-1", pb.PROCESS_STATE_STARTING)
    fatal = proc("doomed-1", pb.PROCESS_STATE_FATAL, "exited with code 7")
    exited = proc("oneshot-1", pb.PROCESS_STATE_EXITED, "exited with code 0; restart: never")
    assert startup_failure([starting, fatal], timed_out=False, timeout_s=30) == (
        "doomed-1",
        "is FATAL: exited with code 7",
    )
    assert startup_failure([exited], timed_out=False, timeout_s=30)[0] == "oneshot-1"  # type: ignore[index]
    assert startup_failure([starting], timed_out=False, timeout_s=30) is None
    assert startup_failure([starting], timed_out=True, timeout_s=30) == (
        "calc-1",
        "not ready within 30 s (state STARTING; no exit yet)",
    )
    assert startup_failure([], timed_out=False, timeout_s=30) is None
    assert startup_failure([], timed_out=True, timeout_s=30) == ("lab", "listed no processes within 30 s")
