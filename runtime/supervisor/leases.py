"""Leases: the lab lives while one is held; after the last one lapses it lingers, then stops.

Pure bookkeeping with the clock passed in, so the linger rule is testable without sleeping:

    table = LeaseTable(linger_s=30, now=0.0)
    lease = table.acquire("kernel 1234", ttl_s=10, now=1.0)
    table.should_stop(now=12.0)   # lease expired at 11.0 -> idle since 11.0 -> False
    table.should_stop(now=41.5)   # idle for 30.5 s  -> True
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from runtime.errors import quote

DEFAULT_TTL_S = 10.0
MIN_TTL_S = 0.1
MAX_TTL_S = 3600.0


class UnknownLease(LookupError):
    """The lease id is not (or no longer) held."""


@dataclass
class Lease:
    """One lease: who holds it and until when (monotonic seconds)."""

    lease_id: str
    holder: str
    ttl_s: float
    expires_at: float


class LeaseTable:
    """Live leases and the idle clock that decides when the lab shuts itself down."""

    def __init__(self, linger_s: float, now: float) -> None:
        self.linger_s = linger_s
        self._leases: dict[str, Lease] = {}
        # No lease yet counts as idle since start: a lab nobody attaches to goes away.
        self.idle_since: float | None = now

    def published(self, now: float) -> None:
        """The lab can be found from ``now`` on: an unclaimed lab lingers from here, not from start.

        Start-up (imports, spawning the services) may take longer than a short linger_s on a busy
        machine; nobody could take a lease before the daemon published its address.
        """
        if not self._leases:
            self.idle_since = now

    def acquire(self, holder: str, ttl_s: float, now: float) -> Lease:
        """A new lease for ``holder`` valid for ``ttl_s`` seconds (clamped to sane bounds)."""
        ttl = min(max(ttl_s or DEFAULT_TTL_S, MIN_TTL_S), MAX_TTL_S)
        lease = Lease(uuid.uuid4().hex, holder, ttl, now + ttl)
        self._leases[lease.lease_id] = lease
        self.idle_since = None
        return lease

    def renew(self, lease_id: str, now: float) -> Lease:
        """Extend a live lease by its ttl; UnknownLease if it lapsed or never existed."""
        self.expire(now)
        lease = self._leases.get(lease_id)
        if lease is None:
            raise UnknownLease(
                f"lease {quote(lease_id)} is not held (it expired or was released); acquire a new one"
            )
        lease.expires_at = now + lease.ttl_s
        return lease

    def release(self, lease_id: str, now: float) -> int:
        """Drop a lease (unknown ids are fine); returns how many remain."""
        self._leases.pop(lease_id, None)
        return self.expire(now)

    def expire(self, now: float) -> int:
        """Drop lapsed leases; returns how many live ones remain."""
        for lease in sorted(self.expired_now(now), key=lambda le: le.expires_at):
            del self._leases[lease.lease_id]
            if not self._leases:
                self.idle_since = lease.expires_at
        if not self._leases and self.idle_since is None:
            self.idle_since = now
        return len(self._leases)

    def expired_now(self, now: float) -> list[Lease]:
        """Leases that lapsed by ``now`` (not yet dropped), for reporting before expire()."""
        return [le for le in self._leases.values() if le.expires_at <= now]

    @property
    def count(self) -> int:
        """Live leases (as of the last expire())."""
        return len(self._leases)

    def should_stop(self, now: float) -> bool:
        """True once no lease has been held for linger_s."""
        self.expire(now)
        return self.idle_since is not None and now - self.idle_since >= self.linger_s
