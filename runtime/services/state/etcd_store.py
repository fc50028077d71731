"""The state service on etcd (``store: etcd``): values, CAS, locks and fencing as etcd does them.

Keys (under the session prefix, ``/runtime-lab/`` by default):

    state/values/<key>    {"value": ..., "updated_at": ms}; the lab's version is etcd's per-key
                          ``version`` (1, 2, 3 ... like the SQLite store)
    state/locks/<name>    {"owner", "lock_id", "token", "expires_at_ms"} under an etcd lease

- Get is one linearizable range read. Set is a put. CompareAndSwap reads the key, checks the lab
  version, then writes in a transaction that compares the key's ``mod_revision`` with the one it
  read: a writer that slipped in between makes the transaction fail and the caller gets
  swapped=false with the value now stored, exactly as on SQLite.
- A lock is a key under an etcd lease. Its **fencing token is the revision at which it was
  granted** (the key's mod_revision then): etcd revisions only grow, cluster-wide, so a later grant
  always has a larger token, across restarts of the state service and failovers of etcd members.
  The lab's ttl_ms is kept in the value (``expires_at_ms``, the same rule as the local store, to the
  millisecond); the lease (ttl rounded up to seconds, plus one) is the backstop that removes the
  key when nobody is left to delete it. A waiter watches the lock key and wakes on its deletion.
- Watch reads the key at revision R and watches from R+1: nothing is missed or doubled, and a
  watch broken by a dead member resumes from its last revision (runtime/client/etcd.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import math
import uuid
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import quote as url_quote

from runtime.client.etcd import EtcdSession, StoreChoice, delete_op, get_op, mod_is, put_op, txn_request
from runtime.errors import quote
from runtime.services.state.locks import (
    DEFAULT_TTL_MS,
    ENDED_KEPT,
    MAX_TTL_MS,
    MAX_WAIT_MS,
    Grant,
    LockGone,
    LockProblem,
    UnknownLock,
)
from runtime.services.state.store import StateProblem, check_key, check_value, now_ms
from runtime.services.watchers import Watcher
from runtime.v1 import state_pb2

log = logging.getLogger("runtime.services.state")

LEASE_SLACK_S = 1  # the lease outlives ttl_ms by this much: the value's expiry decides, not etcd's


def _key_part(text: str) -> str:
    return url_quote(text, safe="")


class EtcdState:
    """StateBackend over an etcd cluster (see the module docstring)."""

    def __init__(self, choice: StoreChoice, *, session: EtcdSession | None = None, prefix: str = "") -> None:
        self.session = session or (EtcdSession(choice, prefix) if prefix else EtcdSession(choice))
        self._mine: dict[str, tuple[str, int]] = {}  # lock_id -> (name, etcd lease id)
        self._ended: collections.OrderedDict[str, str] = collections.OrderedDict()

    def _value_key(self, key: str) -> bytes:
        return self.session.key("state", "values", _key_part(key))

    def _lock_key(self, name: str) -> bytes:
        return self.session.key("state", "locks", _key_part(name))

    @staticmethod
    def _value(key: str, kv: Any) -> state_pb2.StateValue:
        if kv is None:
            return state_pb2.StateValue(key=key, version=0)
        data = json.loads(kv.value)
        return state_pb2.StateValue(
            key=key, value=data["value"], version=kv.version, updated_at=data["updated_at"]
        )

    async def _read(self, key: bytes) -> tuple[int, Any]:
        revision, kvs = await self.session.range(key)
        return revision, (kvs[0] if kvs else None)

    # -- values ------------------------------------------------------------------------------

    async def get(self, key: str) -> state_pb2.StateValue:
        """See StateBackend."""
        _, kv = await self._read(self._value_key(key))
        return self._value(key, kv)

    async def set(self, key: str, value: str) -> state_pb2.StateValue:
        """See StateBackend."""
        check_key(key)
        check_value(value)
        k = self._value_key(key)
        updated_at = now_ms()
        body = json.dumps({"value": value, "updated_at": updated_at}).encode()
        reply = await self.session.txn(txn_request([], [put_op(k, body), get_op(k)], []))
        kv = reply.responses[1].response_range.kvs[0]
        return self._value(key, kv)

    async def compare_and_swap(
        self, key: str, expected_version: int, new_value: str
    ) -> tuple[bool, state_pb2.StateValue]:
        """See StateBackend."""
        check_key(key)
        check_value(new_value)
        if expected_version < 0:
            raise StateProblem(
                f"expected_version is {expected_version}; use 0 (create) or a version from Get"
            )
        k = self._value_key(key)
        _, kv = await self._read(k)
        current = self._value(key, kv)
        if current.version != expected_version:
            return False, current
        body = json.dumps({"value": new_value, "updated_at": now_ms()}).encode()
        seen = kv.mod_revision if kv is not None else 0
        reply = await self.session.txn(
            txn_request([mod_is(k, seen)], [put_op(k, body), get_op(k)], [get_op(k)])
        )
        if reply.succeeded:
            return True, self._value(key, reply.responses[1].response_range.kvs[0])
        kvs = reply.responses[0].response_range.kvs
        return False, self._value(key, kvs[0] if kvs else None)

    async def watch(self, key: str) -> AsyncGenerator[state_pb2.StateValue, None]:
        """See StateBackend."""
        k = self._value_key(key)
        revision, kv = await self._read(k)
        yield self._value(key, kv)
        queue: Watcher[state_pb2.StateValue] = Watcher(lambda _v: True)
        pump = asyncio.create_task(self._pump(key, k, revision + 1, queue), name=f"state-watch-{key[:40]}")
        try:
            while True:
                yield await queue.next()
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump
            if queue.dropped:
                log.warning("a slow watcher of %s lost %d changes", key, queue.dropped)

    async def _pump(self, key: str, k: bytes, start: int, queue: Watcher[state_pb2.StateValue]) -> None:
        async for event in self.session.watch(k, None, start):
            queue.put(self._value(key, event.kv if event.kind == "PUT" else None))

    # -- locks -------------------------------------------------------------------------------

    async def acquire(self, name: str, owner: str, ttl_ms: int, wait_ms: int) -> tuple[bool, Grant | None]:
        """See StateBackend; the fencing token is the lock key's create revision."""
        if not 0 <= ttl_ms <= MAX_TTL_MS:
            raise LockProblem(f"ttl_ms is {ttl_ms}; use 1..{MAX_TTL_MS} (0 means {DEFAULT_TTL_MS})")
        if not 0 <= wait_ms <= MAX_WAIT_MS:
            raise LockProblem(f"wait_ms is {wait_ms}; use 0..{MAX_WAIT_MS} (0 means try once)")
        ttl_ms = ttl_ms or DEFAULT_TTL_MS
        deadline = now_ms() + wait_ms
        k = self._lock_key(name)
        while True:
            revision, kv = await self._read(k)
            held = json.loads(kv.value) if kv is not None else None
            now = now_ms()
            if held is not None and held["expires_at_ms"] > now:
                if held["owner"] == owner:  # renewal: same lock id, same token, new expiry
                    renewed = await self._put(k, kv.mod_revision, name, owner, ttl_ms, held["lock_id"])
                    if renewed is not None:
                        return True, renewed
                    continue
                holder = Grant(
                    name, held["owner"], held["lock_id"], kv.create_revision, held["expires_at_ms"]
                )
                if now >= deadline:
                    return False, holder
                await self._wait_change(k, revision + 1, (min(deadline, held["expires_at_ms"]) - now) / 1000)
                continue
            if held is not None:
                # An expired grant: delete its key first, so the new grant creates the key afresh
                # and gets a new create revision (etcd refuses a delete and a put of one key in
                # one transaction).
                self._end(
                    held["lock_id"],
                    name,
                    kv.create_revision,
                    held,
                    "expired: its ttl passed without a renewal",
                )
                await self.session.txn(txn_request([mod_is(k, kv.mod_revision)], [delete_op(k)], []))
            granted = await self._put(k, 0, name, owner, ttl_ms, uuid.uuid4().hex)
            if granted is not None:
                return True, granted

    async def _put(
        self, k: bytes, seen: int, name: str, owner: str, ttl_ms: int, lock_id: str
    ) -> Grant | None:
        """Write the grant if the key is still at mod_revision ``seen`` (0: absent); None otherwise."""
        lease = await self.session.grant(math.ceil(ttl_ms / 1000) + LEASE_SLACK_S)
        expires = now_ms() + ttl_ms
        body = json.dumps({"owner": owner, "lock_id": lock_id, "expires_at_ms": expires}).encode()
        reply = await self.session.txn(
            txn_request([mod_is(k, seen)], [put_op(k, body, lease), get_op(k)], [])
        )
        if not reply.succeeded:
            await self.session.revoke(lease)
            return None
        token = reply.responses[1].response_range.kvs[0].create_revision
        old = self._mine.get(lock_id)
        self._mine[lock_id] = (name, lease)
        if old is not None and old[1] != lease:
            await self.session.revoke(old[1])
        return Grant(name, owner, lock_id, token, expires)

    async def _wait_change(self, k: bytes, start: int, timeout_s: float) -> None:
        """Until the lock key changes after ``start`` or ``timeout_s`` passes (no polling)."""
        events = self.session.watch(k, None, start)
        try:
            await asyncio.wait_for(anext(events), max(timeout_s, 0.001))
        except TimeoutError:
            pass
        finally:
            await events.aclose()

    async def release(self, lock_id: str) -> Grant:
        """See StateBackend."""
        mine = self._mine.get(lock_id)
        if mine is None:
            why = self._ended.get(lock_id)
            if why is None:
                raise UnknownLock(
                    f"no lock with id {quote(lock_id)}: never granted by this state service "
                    "(it remembers the lock ids it granted since it started)"
                )
            raise LockGone(f"lock id {quote(lock_id)} is no longer held: {why}; acquire the lock again")
        name, lease = mine
        k = self._lock_key(name)
        _, kv = await self._read(k)
        held = json.loads(kv.value) if kv is not None else None
        ours = held is not None and held["lock_id"] == lock_id
        if ours and held is not None and held["expires_at_ms"] > now_ms():
            reply = await self.session.txn(txn_request([mod_is(k, kv.mod_revision)], [delete_op(k)], []))
            if reply.succeeded:
                await self.session.revoke(lease)
                self._end(lock_id, name, kv.create_revision, held, "released")
                return Grant(name, held["owner"], lock_id, kv.create_revision, held["expires_at_ms"])
        token = kv.create_revision if ours else 0
        self._end(lock_id, name, token, held if ours else None, "expired: its ttl passed without a renewal")
        raise LockGone(
            f"lock id {quote(lock_id)} is no longer held: {self._ended[lock_id]}; acquire the lock again"
        )

    def _end(self, lock_id: str, name: str, token: int, held: dict[str, Any] | None, why: str) -> None:
        if lock_id in self._ended:
            return
        self._mine.pop(lock_id, None)
        who = f" (token {token}, owner {held['owner']})" if held else ""
        self._ended[lock_id] = f"lock {name!r}{who} {why}"
        while len(self._ended) > ENDED_KEPT:
            self._ended.popitem(last=False)

    async def close(self) -> None:
        """See StateBackend."""
        await self.session.close()
