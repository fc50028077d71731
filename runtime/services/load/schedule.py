"""What a load test will do: the validated plan (bounded) and its open-loop send schedule.

    plan = LoadPlan.from_config(load_pb2.LoadConfig(target_service="CalculatorService",
                                                    requests_per_second=200, duration_seconds=2))
    schedule = Schedule(plan.rps, plan.duration_s, start_s=time.monotonic())
    schedule.intended(0), schedule.total      # send time of request 0; 400 requests in all

Open loop: request ``i`` is due at ``start + i / rps`` whatever happened to the ones before it,
and its latency is measured from that intended time (no coordinated omission).

A plan in closed loop (``LoadConfig.mode = LOAD_MODE_CLOSED_LOOP``) has no schedule: its
``concurrency`` workers call back to back, paced by ``runtime/services/load/closed_loop.py``.

Every number is bounded; a bad value raises ``PlanError`` with a message naming the limit
(the service answers INVALID_ARGUMENT with it). The limits are the process's ``LoadSettings``
(runtime/services/load/settings.py), read from the environment once at start.
"""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass

from runtime.services.load.settings import DEFAULT_SETTINGS, LoadSettings
from runtime.v1 import load_pb2

# Waiting for a send that is due later, the open-loop dispatcher and a closed-loop worker sleep
# at most MAX_SLEEP_S (so stop() is quick even at 1 rps) and at least MIN_SLEEP_S: asyncio's
# default loop waits at least 1 ms anyway (epoll's timeout is in whole ms, rounded up), but uvloop
# (runtime/services/main.py) turns a sleep under 0.5 ms into "at once", and the dispatcher would
# spin between two sends (36 000 loop turns a second).
MAX_SLEEP_S = 0.05
MIN_SLEEP_S = 0.001


async def nap(wait_s: float) -> None:
    """Sleep toward a send due in ``wait_s`` seconds (bounded as above); the caller looks again."""
    await asyncio.sleep(min(max(wait_s, MIN_SLEEP_S), MAX_SLEEP_S))


MAX_PAYLOAD_BYTES = 4096
MAX_PREFIX_CHARS = 64
MAX_NAME_CHARS = 200  # target_service and target_role: they appear in messages and lookups
DEFAULT_CONCURRENCY = 200
DEFAULT_TIMEOUT_MS = 1000
DEFAULT_CLOSED_LOOP_CLIENTS = 1  # a closed loop's workers when concurrent_clients is 0 (one user)
OPEN_LOOP = load_pb2.LOAD_MODE_OPEN_LOOP
CLOSED_LOOP = load_pb2.LOAD_MODE_CLOSED_LOOP


class PlanError(ValueError):
    """A LoadConfig the load generator refuses (the message names the field and its limit)."""


@dataclass(frozen=True)
class LoadPlan:
    """A validated LoadConfig: every number within its limit, defaults filled in."""

    target: str
    role: str
    rps: int
    duration_s: int
    concurrency: int
    method: str
    timeout_s: float
    payload: dict[str, float]
    correlation_prefix: str
    mode: int = OPEN_LOOP  # OPEN_LOOP or CLOSED_LOOP (LOAD_MODE_UNSPECIFIED is open loop)

    @property
    def closed_loop(self) -> bool:
        """True when ``concurrency`` workers each wait for an answer before they send again."""
        return self.mode == CLOSED_LOOP

    @classmethod
    def from_config(cls, config: load_pb2.LoadConfig, limits: LoadSettings = DEFAULT_SETTINGS) -> LoadPlan:
        """Validate ``config`` within ``limits``. Raises PlanError naming the bad field and its range."""
        if not config.target_service.strip():
            raise PlanError("target_service is empty; name a service, e.g. 'CalculatorService'")
        for field, value in (("target_service", config.target_service), ("target_role", config.target_role)):
            if len(value) > MAX_NAME_CHARS:
                raise PlanError(
                    f"{field} is {len(value)} characters long; at most {MAX_NAME_CHARS} are allowed"
                )
        _within("requests_per_second", config.requests_per_second, 1, limits.max_rps)
        _within("duration_seconds", config.duration_seconds, 1, limits.max_duration_s)
        mode = _mode(config.mode)
        default_clients = DEFAULT_CLOSED_LOOP_CLIENTS if mode == CLOSED_LOOP else DEFAULT_CONCURRENCY
        concurrency = config.concurrent_clients or default_clients
        _within("concurrent_clients", concurrency, 1, limits.max_concurrency, zero_means=default_clients)
        timeout_ms = config.timeout_ms or DEFAULT_TIMEOUT_MS
        _within("timeout_ms", timeout_ms, 1, limits.max_timeout_ms, zero_means=DEFAULT_TIMEOUT_MS)
        if len(config.correlation_prefix) > MAX_PREFIX_CHARS:
            raise PlanError(f"correlation_prefix is longer than {MAX_PREFIX_CHARS} characters")
        return cls(
            target=config.target_service.strip(),
            role=config.target_role,
            rps=config.requests_per_second,
            duration_s=config.duration_seconds,
            concurrency=concurrency,
            method=config.method,
            timeout_s=timeout_ms / 1000.0,
            payload=parse_payload(bytes(config.payload)),
            correlation_prefix=config.correlation_prefix,
            mode=mode,
        )


def _mode(value: int) -> int:
    """LoadConfig.mode as OPEN_LOOP or CLOSED_LOOP; an unknown number raises PlanError quoting it."""
    if value == load_pb2.LOAD_MODE_UNSPECIFIED:
        return OPEN_LOOP
    if value in (OPEN_LOOP, CLOSED_LOOP):
        return value
    raise PlanError(
        f"mode={value} is not a LoadMode; use LOAD_MODE_OPEN_LOOP ({OPEN_LOOP}), "
        f"LOAD_MODE_CLOSED_LOOP ({CLOSED_LOOP}) or leave it unset (open loop)"
    )


def _within(field: str, value: int, low: int, high: int, zero_means: int | None = None) -> None:
    if low <= value <= high:
        return
    default = f" (0 means {zero_means})" if zero_means is not None else ""
    raise PlanError(f"{field}={value} is out of range: it must be between {low} and {high}{default}")


def parse_payload(raw: bytes) -> dict[str, float]:
    """LoadConfig.payload: empty, or a JSON object of numbers such as ``{"a": 2, "b": 3}``."""
    if not raw:
        return {}
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise PlanError(f"payload is {len(raw)} bytes; at most {MAX_PAYLOAD_BYTES} are allowed")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanError(f'payload is not JSON ({exc}); send e.g. {{"a": 2, "b": 3}}') from None
    if not isinstance(data, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in data.values()
    ):
        raise PlanError('payload must be a JSON object of finite numbers, e.g. {"a": 2, "b": 3}')
    return {str(k): float(v) for k, v in data.items()}


class Schedule:
    """The intended send time of every request of an open-loop test.

    Example:
        >>> s = Schedule(rps=100, duration_s=2, start_s=10.0)
        >>> s.total, s.intended(0), s.intended(50), s.end_s
        (200, 10.0, 10.5, 12.0)
    """

    def __init__(self, rps: int, duration_s: float, start_s: float) -> None:
        self.rps = rps
        self.start_s = start_s
        self.end_s = start_s + duration_s
        self.total = int(round(rps * duration_s))
        self._period = 1.0 / rps

    def intended(self, i: int) -> float:
        """When request ``i`` (0-based) is due."""
        return self.start_s + i * self._period

    def due_by(self, now_s: float) -> int:
        """How many requests are due by ``now_s`` (capped at ``total``)."""
        if now_s < self.start_s:
            return 0
        return min(self.total, int((now_s - self.start_s) * self.rps) + 1)
