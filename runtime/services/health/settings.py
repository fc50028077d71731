"""The health service's named settings: probing, flap damping, bounds.

Every number that decides a state lives here with a name (the config issue will make them live).
Each can be overridden from the environment as ``LAB_HEALTH_<NAME>``, for example
``LAB_HEALTH_PROBE_INTERVAL_S=0.2``; tests and the CI profile use that to run faster.

The damping follows Consul's checks: ``failures_before_critical`` becomes
``FAILURES_BEFORE_UNHEALTHY`` and ``success_before_passing`` becomes ``SUCCESSES_BEFORE_HEALTHY``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from runtime.identity import ENV_HEALTH_PREFIX


@dataclass(frozen=True)
class HealthSettings:
    """Thresholds and bounds of the health service (see the module docstring)."""

    # Probes (grpc.health.v1 Check): liveness for every instance, the state of those that do not
    # push. Interval, timeout and failures are the defaults for services the supervisor does not
    # describe; lab.yaml's services.<name>.liveness (via ListProcesses) wins for the others.
    probe_interval_s: float = 1.0
    probe_timeout_s: float = 0.5
    failures_before_unhealthy: int = 3
    successes_before_healthy: int = 2
    probe_degraded_latency_ms: float = 200.0
    # An instance that registered gets this long to open its push stream before probes start.
    push_grace_s: float = 1.5
    # Bounds.
    history_per_instance: int = 1000
    subscriber_queue: int = 1000
    max_instances: int = 2000
    # Followers reconnect after this pause (doubling up to the cap) when a stream breaks.
    reconnect_initial_s: float = 0.05
    reconnect_max_s: float = 1.0
    # Calls to the broker (SetInstanceHealth) and the supervisor give up after this long.
    call_timeout_s: float = 2.0
    # WatchHealth holds an UNHEALTHY event back until the broker has it, at most this long.
    broker_sync_timeout_s: float = 0.2

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HealthSettings:
        """Defaults, overridden by ``LAB_HEALTH_<NAME>`` variables; a bad value names the variable.

        The health service reads them once, when it starts (``HealthService()`` in ``main``).
        """
        env = os.environ if env is None else env
        changes: dict[str, float | int] = {}
        for f in fields(cls):
            key = ENV_HEALTH_PREFIX + f.name.upper()
            raw = env.get(key)
            if raw is None or raw == "":
                continue
            kind = int if f.type in ("int", int) else float
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(
                    f"{key}={raw!r} is not a{'n integer' if kind is int else ' number'}"
                ) from None
            if value < 0:
                raise ValueError(f"{key}={raw!r} must not be negative")
            changes[f.name] = value
        return replace(cls(), **changes)  # type: ignore[arg-type]
