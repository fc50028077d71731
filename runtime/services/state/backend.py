"""The state service's store seam: what StateService needs, and the local (SQLite) implementation.

    StateBackend     the protocol: get, set, compare_and_swap, acquire, release, watch, close
    ├── LocalState   StateStore (SQLite) + Locks (memory) + Watchers: the default, ``store: local``
    └── EtcdState    runtime/services/state/etcd_store.py, ``store: etcd``

Both raise the same exceptions (StateProblem, LockProblem, UnknownLock, LockGone), so the servicer
turns them into the same statuses and messages whichever store runs; an etcd cluster that cannot
answer raises runtime.client.etcd.StoreUnavailable (gRPC UNAVAILABLE). ``make_backend`` picks one
from ``LAB_STORE`` (runtime/client/etcd.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from typing import Protocol

from runtime.client.store_choice import StoreChoice
from runtime.identity import STATE_DB_FILE, Identity
from runtime.services.state.locks import Grant, Locks
from runtime.services.state.store import StateStore
from runtime.services.watchers import Watchers
from runtime.v1 import state_pb2

log = logging.getLogger("runtime.services.state")


class StateBackend(Protocol):
    """Versioned values, locks with fencing tokens, and watches: what StateService calls."""

    async def get(self, key: str) -> state_pb2.StateValue:
        """The value of ``key``; version 0 when it does not exist."""
        ...

    async def set(self, key: str, value: str) -> state_pb2.StateValue:
        """Unconditional write; the version goes up by one."""
        ...

    async def compare_and_swap(
        self, key: str, expected_version: int, new_value: str
    ) -> tuple[bool, state_pb2.StateValue]:
        """Write only at ``expected_version`` (0: only if absent); (swapped, value now stored)."""
        ...

    async def acquire(self, name: str, owner: str, ttl_ms: int, wait_ms: int) -> tuple[bool, Grant | None]:
        """Take lock ``name`` (waiting up to ``wait_ms``); (acquired, the grant or the holder's)."""
        ...

    async def release(self, lock_id: str) -> Grant:
        """Release a grant by id (UnknownLock, LockGone)."""
        ...

    def watch(self, key: str) -> AsyncGenerator[state_pb2.StateValue, None]:
        """The current value (version 0: absent), then every change; a bounded queue per watcher."""
        ...

    async def close(self) -> None:
        """Release files and connections."""
        ...


class LocalState:
    """The default store: SQLite values and fencing counters, locks in this process's memory."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.locks = Locks(store.next_token)
        self.watchers: Watchers[state_pb2.StateValue] = Watchers()

    async def get(self, key: str) -> state_pb2.StateValue:
        """See StateBackend."""
        return self.store.get(key)

    async def set(self, key: str, value: str) -> state_pb2.StateValue:
        """See StateBackend."""
        stored = self.store.set(key, value)
        self.watchers.publish(stored)
        return stored

    async def compare_and_swap(
        self, key: str, expected_version: int, new_value: str
    ) -> tuple[bool, state_pb2.StateValue]:
        """See StateBackend."""
        swapped, current = self.store.compare_and_swap(key, expected_version, new_value)
        if swapped:
            self.watchers.publish(current)
        return swapped, current

    async def acquire(self, name: str, owner: str, ttl_ms: int, wait_ms: int) -> tuple[bool, Grant | None]:
        """See StateBackend."""
        return await self.locks.acquire(name, owner, ttl_ms, wait_ms)

    async def release(self, lock_id: str) -> Grant:
        """See StateBackend."""
        return self.locks.release(lock_id)

    async def watch(self, key: str) -> AsyncGenerator[state_pb2.StateValue, None]:
        """See StateBackend."""
        # Subscribe and read with no await in between: nothing is missed or doubled.
        w = self.watchers.add(lambda v: v.key == key)
        try:
            yield self.store.get(key)
            while True:
                yield await w.next()
        finally:
            self.watchers.remove(w)
            if w.dropped:
                log.warning("a slow watcher of %s lost %d changes", key, w.dropped)

    async def close(self) -> None:
        """See StateBackend."""
        self.store.close()


def make_backend(identity: Identity, choice: StoreChoice) -> StateBackend:
    """``LocalState`` on ``$LAB_DIR/state.sqlite`` (in memory without LAB_DIR), or ``EtcdState``."""
    if choice.is_etcd:
        from runtime.services.state.etcd_store import EtcdState

        return EtcdState(choice)
    return LocalState(StateStore(identity.lab_path(STATE_DB_FILE)))
