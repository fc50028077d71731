"""``lab.watch_services``: the broker's registry events in a notebook callback (runtime/lab/discovery.py).

A real lab (tests/labs/small.yaml: broker + two Python calculators): the snapshot, a scale-up's
ADDED, a SIGKILL's REMOVED with the supervisor's reason, an exact resume from a revision, and the
loud OUT_OF_RANGE for a revision the broker no longer keeps.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from runtime.errors import ClientError, LabError
from runtime.lab.discovery import service_event_dict
from runtime.v1 import broker_pb2

WAIT_S = 15.0


class Seen:
    """A thread-safe list of events with a wait for the first one that matches."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def __call__(self, event: dict[str, Any]) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(self, **fields: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((e for e in self.events if all(e[k] == v for k, v in fields.items())), None)

        with self._cond:
            assert self._cond.wait_for(lambda: found() is not None, WAIT_S), (fields, self.events)
            event = found()
            assert event is not None
            return event


def test_event_dict_flattens_a_removal() -> None:
    event = broker_pb2.ServiceEvent(
        type=broker_pb2.SERVICE_EVENT_TYPE_REMOVED,
        revision=42,
        reason="process exited (SIGKILL)",
        timestamp=1_700_000_000_000,
        instance=broker_pb2.ServiceInstance(service_name="calculator", instance_id="calculator-2", pid=7),
    )
    d = service_event_dict(event)
    assert (d["type"], d["service"], d["instance"], d["pid"], d["revision"]) == (
        "REMOVED",
        "calculator",
        "calculator-2",
        7,
        42,
    )
    assert d["time"].year == 2023 and d["reason"] == "process exited (SIGKILL)"


def test_watch_follows_scale_and_kill_resumes_and_refuses_a_lost_revision(lab_factory) -> None:
    lab = lab_factory("small")
    live = Seen()
    watch = lab.watch_services(live, service="calculator")
    try:
        end = live.wait_for(type="SNAPSHOT_END")
        snapshot = [e["instance"] for e in live.events if e["type"] == "ADDED"]
        assert sorted(snapshot) == ["calculator-1", "calculator-2"]
        mark = end["revision"]

        lab.scale("calculator", 3)
        added = live.wait_for(type="ADDED", instance="calculator-3")
        assert added["reason"] == "registered" and added["revision"] > mark

        victim = lab.kill("calculator", 2)
        removed = live.wait_for(type="REMOVED", instance="calculator-2", pid=victim["pid"])
        assert removed["reason"] in ("killed by SIGKILL", "keepalive stream lost"), removed

        # From the mark: exactly what the live watch saw after it, in the same order.
        replay = Seen()
        resumed = lab.watch_services(replay, service="calculator", from_revision=mark)
        try:
            replay.wait_for(type="REMOVED", instance="calculator-2", pid=victim["pid"])
            after = [(e["type"], e["instance"], e["revision"]) for e in live.events if e["revision"] > mark]
            got = [(e["type"], e["instance"], e["revision"]) for e in replay.events]
            assert got[: len(after)] == after[: len(got)] and got, (got, after)
            assert all(e["revision"] > mark for e in replay.events)
        finally:
            resumed.stop()

        # A revision far older than the broker's history: the watch ends, loudly, and says what to do.
        lost = lab.watch_services(Seen(), from_revision=mark - 5000)
        with pytest.raises(ClientError) as failed:
            lost.wait(WAIT_S)
        assert failed.value.code == "OUT_OF_RANGE" and "watch again from revision 0" in str(failed.value)
        assert not lost.running and lost.events == 0
    finally:
        watch.stop()
    assert not watch.running and watch.error is None and watch.callback_errors == 0


def test_negative_revision_is_a_usage_error_before_any_call() -> None:
    from runtime.lab.discovery import ServiceWatch

    with pytest.raises(LabError, match="negative"):
        ServiceWatch(lambda: "127.0.0.1:1", "", print, from_revision=-1)
