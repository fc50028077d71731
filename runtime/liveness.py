"""Liveness, pure: k probes in a row without an answer -> not responding; long enough -> restart.

A frozen process (SIGSTOP, a deadlock, a GIL held in C code) keeps its sockets and its streams
open, so nothing breaks and nobody notices. Only asking it something with a deadline tells:
every ``period_s`` a grpc.health.v1 Check with a ``timeout_s`` deadline. Any answer (SERVING,
NOT_SERVING, even UNIMPLEMENTED) proves the process runs; DEADLINE_EXCEEDED or UNAVAILABLE is a
miss. This module turns the series of probe outcomes into decisions; the health service
(UNHEALTHY, out of lookups) and the supervisor (events, ``restart_after_s``) both use it, so both
say the same words: ``not responding (3 probes timed out)``.

    misses in a row >= failures                   -> not responding (since the first miss)
    answers in a row >= recoveries (when down)    -> responding again
    not responding for >= restart_after_s (> 0)   -> restart due (kubelet's livenessProbe)

Example:
    >>> t = LivenessTracker(LivenessSettings(period_s=1.0, timeout_s=0.5, failures=3))
    >>> [t.observe(answered=False, now=s) for s in (10.0, 11.0)]
    [None, None]
    >>> t.observe(answered=False, now=12.0).reason
    'not responding (3 probes timed out)'
    >>> t.not_responding_for(now=14.5)
    4.5
    >>> t.observe(answered=True, now=15.0).reason
    'responding again after 5.0 s'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# One probe a second: a frozen process is caught within three seconds, and a lab of a dozen
# processes costs a dozen tiny RPCs a second.
DEFAULT_PERIOD_S = 1.0
# Half a period: an idle or busy (not saturated) Python server answers a health check in a few
# ms, so 0.5 s without an answer is a real miss; and a probe never overlaps the next one.
DEFAULT_TIMEOUT_S = 0.5
# One lost probe (a GC pause, a loaded 2-core laptop) is no verdict; three in a row are.
DEFAULT_FAILURES = 3
# Restarting a hung process is the lab file's decision (``liveness.restart_after_s``): off by
# default, because a process frozen on purpose (a debugger, this chapter's SIGSTOP) must survive.
DEFAULT_RESTART_AFTER_S = 0.0
# Answers in a row that end "not responding" (the health service uses its flap damping's
# ``successes_before_healthy`` instead).
DEFAULT_RECOVERIES = 1


class LivenessConfig(Protocol):
    """Anything with the four settings: lab.yaml's ``Liveness`` section, :class:`LivenessSettings`."""

    @property
    def period_s(self) -> float: ...
    @property
    def timeout_s(self) -> float: ...
    @property
    def failures(self) -> int: ...
    @property
    def restart_after_s(self) -> float: ...


@dataclass(frozen=True)
class LivenessSettings:
    """How one service is probed (``services.<name>.liveness`` in lab.yaml; ``ProcessInfo.liveness``)."""

    period_s: float = DEFAULT_PERIOD_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    failures: int = DEFAULT_FAILURES
    restart_after_s: float = DEFAULT_RESTART_AFTER_S


@dataclass(frozen=True)
class Change:
    """A liveness transition: ``responding`` is the new verdict, ``reason`` says why."""

    responding: bool
    reason: str


def not_responding_reason(misses: int, timeouts: int, last_detail: str = "") -> str:
    """``not responding (3 probes timed out)``; names the last error when not all timed out."""
    if timeouts >= misses:
        return f"not responding ({misses} probes timed out)"
    last = f"; last: {last_detail}" if last_detail else ""
    return f"not responding ({misses} probes unanswered, {timeouts} timed out{last})"


class LivenessTracker:
    """The probe history of one process and the liveness verdict it implies (time passed in)."""

    def __init__(self, settings: LivenessConfig, *, recoveries: int = DEFAULT_RECOVERIES) -> None:
        self.settings = settings
        self.recoveries = max(1, recoveries)
        self.responding = True
        self.misses = 0  # in a row
        self.timeouts = 0  # of those misses, how many hit the deadline
        self.answers = 0  # in a row
        self.first_miss_at: float | None = None
        self.down_since: float | None = None  # when the current miss streak began, once decided

    def reset(self) -> None:
        """Forget everything (a new process behind the same instance)."""
        self.responding = True
        self.misses = self.timeouts = self.answers = 0
        self.first_miss_at = self.down_since = None

    def observe(
        self, *, answered: bool, now: float, timed_out: bool = True, detail: str = ""
    ) -> Change | None:
        """Record one probe outcome at monotonic time ``now``; returns a Change when the verdict flips.

        Args:
            answered: the process answered at all (any status); False for a miss.
            timed_out: for a miss, whether it hit the deadline (else e.g. UNAVAILABLE).
            detail: what the miss was, for the reason when not every miss timed out.
        """
        if answered:
            self.misses = self.timeouts = 0
            self.first_miss_at = None
            self.answers += 1
            if not self.responding and self.answers >= self.recoveries:
                down_for = now - (self.down_since if self.down_since is not None else now)
                self.responding = True
                self.down_since = None
                return Change(True, f"responding again after {down_for:.1f} s")
            return None
        self.answers = 0
        if self.misses == 0:
            self.first_miss_at = now
        self.misses += 1
        self.timeouts += 1 if timed_out else 0
        if self.responding and self.misses >= max(1, self.settings.failures):
            self.responding = False
            self.down_since = self.first_miss_at
            return Change(False, not_responding_reason(self.misses, self.timeouts, detail))
        return None

    def not_responding_for(self, now: float) -> float:
        """Seconds since the first miss of the streak that made it not responding (0 when responding)."""
        if self.responding or self.down_since is None:
            return 0.0
        return round(now - self.down_since, 3)

    def restart_due(self, now: float) -> bool:
        """True once it has been not responding for ``restart_after_s`` (never when that is 0)."""
        after = self.settings.restart_after_s
        return after > 0 and not self.responding and self.not_responding_for(now) >= after
