"""Lock rules and bounded watcher queues, in memory with a fake clock (no processes)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from runtime.services.state.locks import MAX_TTL_MS, LockGone, LockProblem, Locks, UnknownLock
from runtime.services.state.store import StateProblem, StateStore
from runtime.services.watchers import Watchers


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms


def make_locks() -> tuple[Locks, Clock]:
    clock = Clock()
    tokens = itertools.count(1)
    return Locks(lambda _name: next(tokens), clock=clock), clock


def test_grant_renew_expire_and_release_rules():
    async def scenario():
        locks, clock = make_locks()
        ok, a = await locks.acquire("leader", "a", 100, 0)
        assert ok and a.token == 1
        ok, held = await locks.acquire("leader", "b", 100, 0)
        assert not ok and held.owner == "a"
        clock.ms += 50
        ok, renewed = await locks.acquire("leader", "a", 100, 0)
        assert ok and renewed.lock_id == a.lock_id and renewed.expires_at_ms == clock.ms + 100
        clock.ms += 101
        ok, b = await locks.acquire("leader", "b", 100, 0)
        assert ok and b.token == 2
        with pytest.raises(LockGone, match="expired"):
            locks.release(a.lock_id)
        assert locks.release(b.lock_id).owner == "b"
        with pytest.raises(LockGone, match="released"):
            locks.release(b.lock_id)
        with pytest.raises(UnknownLock, match="never granted"):
            locks.release("nope")
        for ttl, wait in [(-1, 0), (MAX_TTL_MS + 1, 0), (100, -1), (100, 10**9)]:
            with pytest.raises(LockProblem):
                await locks.acquire("leader", "c", ttl, wait)

    asyncio.run(scenario())


def test_fencing_tokens_persist_in_the_store(tmp_path):
    store = StateStore(str(tmp_path / "state.sqlite"))
    assert [store.next_token("l"), store.next_token("l"), store.next_token("m")] == [1, 2, 1]
    store.close()
    again = StateStore(str(tmp_path / "state.sqlite"))
    assert again.next_token("l") == 3
    with pytest.raises(StateProblem):
        again.set("", "v")
    again.close()


def test_a_slow_watcher_loses_its_oldest_items():
    async def scenario():
        watchers: Watchers[int] = Watchers(maxsize=3)
        evens = watchers.add(lambda n: n % 2 == 0)
        for n in range(10):
            watchers.publish(n)
        got = [await evens.next() for _ in range(3)]
        assert got == [4, 6, 8] and evens.dropped == 2
        watchers.remove(evens)
        assert len(watchers) == 0

    asyncio.run(scenario())
