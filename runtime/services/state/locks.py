"""Locks of the state service: TTL, bounded waits, fencing tokens, in memory.

Holdings live only in the state service's memory (a restart frees every lock); the fencing
counter per lock name is persisted by the store, so tokens keep increasing across restarts and
a holder from before a restart can always be told apart from a newer one.

Rules:
- ``acquire(name, owner, ttl_ms, wait_ms)``: granted when the lock is free or expired, with a new
  fencing token; when ``owner`` already holds it, the grant is renewed (same lock id and token,
  new expiry); otherwise it waits up to ``wait_ms`` for a release or expiry.
- ``release(lock_id)``: only the current, unexpired holder can release.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from runtime.errors import quote

MAX_TTL_MS = 60_000
DEFAULT_TTL_MS = 10_000
MAX_WAIT_MS = 30_000
# Remember this many ended grants, to tell "expired" from "never granted" in ReleaseLock.
ENDED_KEPT = 1000


class LockProblem(ValueError):
    """Bad lock request: INVALID_ARGUMENT."""


class UnknownLock(LookupError):
    """No such lock id: NOT_FOUND."""


class LockGone(Exception):
    """The lock id expired or was superseded: FAILED_PRECONDITION."""


@dataclass
class Grant:
    """One holding of a lock."""

    name: str
    owner: str
    lock_id: str
    token: int
    expires_at_ms: int


def now_ms() -> int:
    """Unix epoch milliseconds."""
    return time.time_ns() // 1_000_000


class Locks:
    """Every lock of one state service (used from its event loop only)."""

    def __init__(self, next_token: Callable[[str], int], clock: Callable[[], int] = now_ms) -> None:
        self._next_token = next_token
        self._clock = clock
        self._held: dict[str, Grant] = {}
        self._by_id: dict[str, Grant] = {}
        self._ended: collections.OrderedDict[str, str] = collections.OrderedDict()  # lock_id -> why
        self._changed: dict[str, asyncio.Event] = {}

    def holder(self, name: str) -> Grant | None:
        """The current unexpired grant of ``name``, or None."""
        grant = self._held.get(name)
        if grant is not None and grant.expires_at_ms <= self._clock():
            self._end(grant, "expired: its ttl passed without a renewal")
            return None
        return grant

    async def acquire(self, name: str, owner: str, ttl_ms: int, wait_ms: int) -> tuple[bool, Grant | None]:
        """Try to take ``name`` for ``owner``; returns (acquired, the grant or the current holder's)."""
        if not 0 <= ttl_ms <= MAX_TTL_MS:
            raise LockProblem(f"ttl_ms is {ttl_ms}; use 1..{MAX_TTL_MS} (0 means {DEFAULT_TTL_MS})")
        if not 0 <= wait_ms <= MAX_WAIT_MS:
            raise LockProblem(f"wait_ms is {wait_ms}; use 0..{MAX_WAIT_MS} (0 means try once)")
        ttl_ms = ttl_ms or DEFAULT_TTL_MS
        deadline = self._clock() + wait_ms
        while True:
            current = self.holder(name)
            if current is None:
                token = self._next_token(name)
                grant = Grant(name, owner, uuid.uuid4().hex, token, self._clock() + ttl_ms)
                self._held[name] = grant
                self._by_id[grant.lock_id] = grant
                return True, grant
            if current.owner == owner:
                current.expires_at_ms = self._clock() + ttl_ms  # renewal: same id, same token
                return True, current
            remaining = min(deadline, current.expires_at_ms) - self._clock()
            if deadline - self._clock() <= 0:
                return False, current
            event = self._changed.setdefault(name, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), max(remaining, 1) / 1000)
            except TimeoutError:
                pass

    def release(self, lock_id: str) -> Grant:
        """Release a grant by id.

        Raises:
            UnknownLock: never granted here (or granted before a restart of the service).
            LockGone: the grant expired or was already released.
        """
        grant = self._by_id.get(lock_id)
        if grant is not None:
            if self.holder(grant.name) is grant:
                self._end(grant, "released")
                return grant
        why = self._ended.get(lock_id)
        if why is None:
            raise UnknownLock(
                f"no lock with id {quote(lock_id)}: never granted by this state service "
                "(locks are kept in memory; a restart of the state service frees them all)"
            )
        raise LockGone(f"lock id {quote(lock_id)} is no longer held: {why}; acquire the lock again")

    def _end(self, grant: Grant, why: str) -> None:
        if self._held.get(grant.name) is grant:
            del self._held[grant.name]
        self._by_id.pop(grant.lock_id, None)
        self._ended[grant.lock_id] = f"lock {grant.name!r} (token {grant.token}, owner {grant.owner}) {why}"
        while len(self._ended) > ENDED_KEPT:
            self._ended.popitem(last=False)
        event = self._changed.pop(grant.name, None)
        if event is not None:
            event.set()
