"""Restart decisions, pure: no processes, no sleeping, time is passed in.

One :class:`RestartTracker` per instance remembers its recent starts and consecutive failures;
``decide()`` turns an exit into RESTART (with delay and rule text), EXIT or FATAL.

    delay(attempt n) = restart_delay_s * backoff_factor ** (n - 1), capped at backoff_max_s
    a run that lasted STABLE_RUN_S or longer resets n to 1
    more than start_limit.starts starts within start_limit.within_s -> FATAL

Example:
    >>> from runtime.supervisor.config import ServiceSpec
    >>> t = RestartTracker(ServiceSpec(name="calc", command=("x",), restart_delay_s=0.5))
    >>> t.record_start(100.0)
    >>> t.decide(exit_code=1, now=100.2).rule
    'restart=always, delay 0.5s (attempt 1)'
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from runtime.supervisor.config import ServiceSpec

# A run at least this long counts as healthy: the next failure starts the backoff from scratch.
STABLE_RUN_S = 10.0


class Action(Enum):
    """What to do after an exit."""

    RESTART = "restart"
    EXIT = "exit"
    FATAL = "fatal"


@dataclass(frozen=True)
class Decision:
    """The policy's answer to one exit: action, delay, attempt number and the rule that applied."""

    action: Action
    rule: str
    delay_s: float = 0.0
    attempt: int = 0


def backoff_delay(spec: ServiceSpec, attempt: int) -> float:
    """Delay before restart attempt ``attempt`` (1-based), capped at backoff_max_s."""
    raw = spec.restart_delay_s * spec.backoff_factor ** max(attempt - 1, 0)
    return min(raw, max(spec.backoff_max_s, spec.restart_delay_s))


def _fmt_s(seconds: float) -> str:
    return f"{seconds:g}s"


class RestartTracker:
    """Start history and failure count of one instance, and the decision on each exit."""

    def __init__(self, spec: ServiceSpec, *, stable_run_s: float = STABLE_RUN_S) -> None:
        self.spec = spec
        self.stable_run_s = stable_run_s
        self.failures = 0
        self._starts: deque[float] = deque()
        self._last_start: float | None = None

    def record_start(self, now: float) -> None:
        """Remember that the instance was (re)started at monotonic time ``now``."""
        self._starts.append(now)
        self._last_start = now
        self._forget_before(now - self.spec.start_limit.within_s)

    def reset(self) -> None:
        """Forget history (a manual start after FATAL or STOPPED begins afresh)."""
        self.failures = 0
        self._starts.clear()
        self._last_start = None

    def decide(self, *, exit_code: int, now: float) -> Decision:
        """Decide what follows an exit with ``exit_code`` (negative: killed by that signal)."""
        spec = self.spec
        if self._last_start is not None and now - self._last_start >= self.stable_run_s:
            self.failures = 0
        if spec.restart == "never":
            return Decision(Action.EXIT, "restart=never: not restarted")
        if spec.restart == "on-failure" and exit_code == 0:
            return Decision(Action.EXIT, "restart=on-failure: exit code 0, not restarted")
        self._forget_before(now - spec.start_limit.within_s)
        limit = spec.start_limit
        if len(self._starts) >= limit.starts:
            return Decision(
                Action.FATAL,
                f"start limit {limit.starts} in {_fmt_s(limit.within_s)} reached: "
                f"{len(self._starts)} starts; start it again by hand once fixed",
            )
        self.failures += 1
        delay = backoff_delay(spec, self.failures)
        rule = f"restart={spec.restart}, delay {_fmt_s(round(delay, 3))} (attempt {self.failures})"
        return Decision(Action.RESTART, rule, delay_s=delay, attempt=self.failures)

    def _forget_before(self, cutoff: float) -> None:
        while self._starts and self._starts[0] <= cutoff:
            self._starts.popleft()
