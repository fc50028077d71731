"""The logger's settings, read once from the environment when the service starts.

=====================  ==========  ==========================================================
variable               default     meaning
=====================  ==========  ==========================================================
``LAB_LOG_RING``       10,000      entries kept in memory (tails and recent queries)
``LAB_LOG_RETENTION``  200,000     entries kept in ``logs.sqlite`` (oldest go first)
=====================  ==========  ==========================================================

The names live in runtime.identity with every other variable of the lab.

Example:
    >>> LoggerSettings.from_env({"LAB_LOG_RING": "50"}).ring_size
    50
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from runtime.identity import ENV_LOG_RETENTION, ENV_LOG_RING
from runtime.services.logger.db import RETENTION_ENTRIES
from runtime.services.logger.ring import RING_SIZE


@dataclass(frozen=True)
class LoggerSettings:
    """Sizes of the logger's ring and of its SQLite retention."""

    ring_size: int = RING_SIZE
    retention: int = RETENTION_ENTRIES

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LoggerSettings:
        """Defaults, overridden by ``LAB_LOG_RING`` / ``LAB_LOG_RETENTION``; unset or empty: default.

        Raises:
            ValueError: a value is not an integer (the message names the variable).
        """
        env = os.environ if env is None else env
        return cls(
            ring_size=_int(env, ENV_LOG_RING, RING_SIZE),
            retention=_int(env, ENV_LOG_RETENTION, RETENTION_ENTRIES),
        )


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key) or ""
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{key}={raw[:200]!r} is not an integer") from None
