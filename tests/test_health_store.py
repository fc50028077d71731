"""The pure health store: transitions, bounded history, snapshots, slow subscribers."""

from __future__ import annotations

import itertools

from runtime.services.health.store import (
    DEGRADED,
    HEALTHY,
    STARTING,
    UNHEALTHY,
    UNKNOWN,
    HealthStore,
)


def make_store(**kw: int) -> HealthStore:
    ticks = itertools.count(1000)
    return HealthStore(clock=lambda: next(ticks), **kw)


def test_transition_records_old_new_reason_and_since():
    store = make_store()
    ev = store.apply("calculator", "calculator-1", STARTING, "spawned pid 1", source="supervisor")
    assert ev is not None and (ev.old_state, ev.new_state, ev.reason) == (UNKNOWN, STARTING, "spawned pid 1")
    ev2 = store.apply("calculator", "calculator-1", HEALTHY, "serving", source="push")
    assert (ev2.old_state, ev2.new_state, ev2.source) == (STARTING, HEALTHY, "push")
    rec = store.get("calculator-1")
    assert rec.state == HEALTHY and rec.since_ms == ev2.timestamp


def test_same_state_refreshes_message_without_event_unless_note():
    store = make_store()
    store.apply("c", "c-1", UNHEALTHY, "report stream lost", source="push")
    assert (
        store.apply("c", "c-1", UNHEALTHY, "process exited: killed by SIGKILL", source="supervisor") is None
    )
    assert store.get("c-1").message == "process exited: killed by SIGKILL"
    note = store.apply("c", "c-1", UNHEALTHY, "restart scheduled", source="supervisor", note=True)
    assert note is not None and note.old_state == note.new_state == UNHEALTHY
    assert [e.reason for e in store.history("c")] == ["report stream lost", "restart scheduled"]


def test_history_is_bounded_per_instance_and_keeps_the_newest():
    store = make_store(history_per_instance=1000)
    for i in range(2500):
        store.apply("c", "c-1", HEALTHY if i % 2 else UNHEALTHY, f"t{i}", source="push")
    store.apply("c", "c-2", HEALTHY, "other", source="push")
    hist = store.history("c", "c-1")
    assert len(hist) == 1000
    assert hist[-1].reason == "t2499" and hist[0].reason == "t1500"
    assert len(store.history("c")) == 1001
    assert [e.reason for e in store.history(limit=2)] == ["t2499", "other"]


def test_subscribe_gives_snapshot_then_transitions():
    store = make_store()
    store.apply("a", "a-1", HEALTHY, "serving", source="push")
    woken = []
    snapshot, sub = store.subscribe(wake=lambda: woken.append(1))
    assert [(e.instance_id, e.new_state, e.snapshot) for e in snapshot] == [("a-1", HEALTHY, True)]
    store.apply("a", "a-1", DEGRADED, "slow", source="push")
    assert woken and [(e.old_state, e.new_state, e.snapshot) for e in sub.drain()] == [
        (HEALTHY, DEGRADED, False)
    ]
    store.unsubscribe(sub)
    store.apply("a", "a-1", HEALTHY, "ok", source="push")
    assert sub.drain() == []


def test_slow_subscriber_drops_oldest_and_is_told_others_get_everything():
    store = make_store(subscriber_queue=10)
    _, slow = store.subscribe()
    _, fast = store.subscribe()
    got_fast = []
    for i in range(25):
        store.apply("c", "c-1", HEALTHY if i % 2 else UNHEALTHY, f"t{i}", source="push")
        got_fast += fast.drain()
    assert len(got_fast) == 25 and all(e.dropped == 0 for e in got_fast)
    events = slow.drain()
    assert len(events) == 10
    assert events[0].dropped == 15 and events[0].reason == "t15"
    assert all(e.dropped == 0 for e in events[1:])
    assert slow.dropped_total == 15
    # The drop count is reported once; later events carry 0 again.
    store.apply("c", "c-1", DEGRADED, "later", source="push")
    assert slow.drain()[0].dropped == 0


def test_service_status_is_the_worst_live_instance():
    store = make_store()
    store.apply("c", "c-1", HEALTHY, "ok", source="push")
    store.apply("c", "c-2", DEGRADED, "slow", source="push")
    assert store.service_status("c").state == DEGRADED
    store.apply("c", "c-3", UNHEALTHY, "stopped: scaled down", source="push", retired=True)
    assert store.service_status("c").state == DEGRADED  # retired instances do not count
    assert store.service_status("nope") is None


def test_instances_are_bounded_retired_go_first():
    store = make_store(max_instances=3)
    store.apply("c", "c-1", UNHEALTHY, "stopped", source="push", retired=True)
    store.apply("c", "c-2", HEALTHY, "ok", source="push")
    store.apply("c", "c-3", HEALTHY, "ok", source="push")
    store.apply("c", "c-4", HEALTHY, "ok", source="push")
    assert [i.instance_id for i in store.instances()] == ["c-2", "c-3", "c-4"]
