"""The load generator's limits, read once from the environment when the service starts.

=============================  =======  =====================================================
variable                       default  the most a caller may ask for
=============================  =======  =====================================================
``LAB_LOAD_MAX_RPS``           5000     requests per second of one test
``LAB_LOAD_MAX_DURATION_S``    300      seconds one test runs
``LAB_LOAD_MAX_CONCURRENCY``   1000     calls one test keeps in flight
``LAB_LOAD_MAX_ACTIVE_TESTS``  4        tests running at once
``LAB_LOAD_MAX_TIMEOUT_MS``    30000    deadline of one call
=============================  =======  =====================================================

The names live in runtime.identity with every other variable of the lab. A request beyond a
limit is refused with a message naming the limit (INVALID_ARGUMENT or RESOURCE_EXHAUSTED).

Example:
    >>> LoadSettings.from_env({"LAB_LOAD_MAX_RPS": "100"}).max_rps
    100
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from runtime.identity import (
    ENV_LOAD_MAX_ACTIVE_TESTS,
    ENV_LOAD_MAX_CONCURRENCY,
    ENV_LOAD_MAX_DURATION_S,
    ENV_LOAD_MAX_RPS,
    ENV_LOAD_MAX_TIMEOUT_MS,
)


@dataclass(frozen=True)
class LoadSettings:
    """The limits of what one load generator process accepts."""

    max_rps: int = 5000
    max_duration_s: int = 300
    max_concurrency: int = 1000
    max_active_tests: int = 4
    max_timeout_ms: int = 30000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LoadSettings:
        """Defaults, overridden by the ``LAB_LOAD_MAX_*`` variables that are set.

        Raises:
            ValueError: a value is not an integer (the message names the variable).
        """
        env = os.environ if env is None else env
        d = cls()
        return cls(
            max_rps=_int(env, ENV_LOAD_MAX_RPS, d.max_rps),
            max_duration_s=_int(env, ENV_LOAD_MAX_DURATION_S, d.max_duration_s),
            max_concurrency=_int(env, ENV_LOAD_MAX_CONCURRENCY, d.max_concurrency),
            max_active_tests=_int(env, ENV_LOAD_MAX_ACTIVE_TESTS, d.max_active_tests),
            max_timeout_ms=_int(env, ENV_LOAD_MAX_TIMEOUT_MS, d.max_timeout_ms),
        )


DEFAULT_SETTINGS = LoadSettings()


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    # As before: an unset variable means the default (an empty one is not an integer).
    raw = env.get(key)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{key}={raw[:200]!r} is not an integer") from None
