"""What a service's agent reads from its environment once, at start, besides its Identity.

The DEGRADED rule's thresholds (runtime/agent/health_reporter.py), the same in every service:

=================================  =======  ==================================================
variable                           default  meaning
=================================  =======  ==================================================
``LAB_HEALTH_DEGRADED_P99_MS``     250      rolling p99 latency (ms) above which it is DEGRADED
``LAB_HEALTH_DEGRADED_IN_FLIGHT``  64       calls at once above which it is DEGRADED
``LAB_HEALTH_RECOVER_HOLD_S``      2.0      how long both must stay calm before HEALTHY again
=================================  =======  ==================================================

The names live in runtime.identity with every other variable of the lab. A service's live config
(e.g. the calculator's ``degraded_p99_ms``) may change the p99 threshold later.

Example:
    >>> AgentSettings.from_env({"LAB_HEALTH_DEGRADED_IN_FLIGHT": "8"}).degraded_in_flight
    8
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from runtime.agent.health_reporter import DEGRADED_IN_FLIGHT, DEGRADED_P99_MS, RECOVER_HOLD_S, DegradedRule
from runtime.identity import ENV_DEGRADED_IN_FLIGHT, ENV_DEGRADED_P99_MS, ENV_RECOVER_HOLD_S

Number = TypeVar("Number", int, float)


@dataclass(frozen=True)
class AgentSettings:
    """The thresholds of this process's DEGRADED rule."""

    degraded_p99_ms: float = DEGRADED_P99_MS
    degraded_in_flight: int = DEGRADED_IN_FLIGHT
    recover_hold_s: float = RECOVER_HOLD_S

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AgentSettings:
        """Defaults, overridden by the ``LAB_HEALTH_DEGRADED_*`` / ``_RECOVER_HOLD_S`` variables set.

        Raises:
            ValueError: a value is not a number (the message names the variable).
        """
        env = os.environ if env is None else env
        return cls(
            degraded_p99_ms=_number(env, ENV_DEGRADED_P99_MS, float, DEGRADED_P99_MS),
            degraded_in_flight=_number(env, ENV_DEGRADED_IN_FLIGHT, int, DEGRADED_IN_FLIGHT),
            recover_hold_s=_number(env, ENV_RECOVER_HOLD_S, float, RECOVER_HOLD_S),
        )

    def degraded_rule(self) -> DegradedRule:
        """A fresh DEGRADED rule with these thresholds."""
        return DegradedRule(
            p99_ms=self.degraded_p99_ms, in_flight=self.degraded_in_flight, recover_hold_s=self.recover_hold_s
        )


def _number(env: Mapping[str, str], key: str, kind: type[Number], default: Number) -> Number:
    # As before: an unset variable means the default (an empty one is not a number).
    raw = env.get(key)
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{key}={raw[:200]!r} is not a{'n integer' if kind is int else ' number'}") from None
