"""Time as the lifecycle sees it: the seam that lets tests advance time instead of sleeping.

The lifecycle reads the monotonic clock (restart policy, start limit), the wall clock (the epoch
milliseconds shown in ProcessInfo and events) and schedules callbacks later (restart delay,
stop grace period). :class:`LoopClock` is the real one; a test passes its own object with the
same three methods and moves time forward by hand, so backoff and start limits are checked
without waiting (tests/test_lifecycle_scripted.py).

Example:
    clock = LoopClock()
    timer = clock.call_later(0.5, print, "half a second later")   # inside a running loop
    timer.cancel()
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol


class Timer(Protocol):
    """A scheduled callback that can still be called off."""

    def cancel(self) -> None:
        """Do not run the callback (no effect once it ran)."""


class Clock(Protocol):
    """What the lifecycle needs to know about time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (policy decisions)."""

    def wall_ms(self) -> int:
        """Unix epoch milliseconds (shown to people: started_at, next_start_at)."""

    def call_later(self, delay_s: float, callback: Callable[..., None], *args: Any) -> Timer:
        """Run ``callback(*args)`` after ``delay_s`` seconds of this clock."""


class LoopClock:
    """The real clock: ``time.monotonic``, ``time.time_ns`` and the running loop's ``call_later``."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def wall_ms(self) -> int:
        """Now, in Unix epoch milliseconds."""
        return time.time_ns() // 1_000_000

    def call_later(self, delay_s: float, callback: Callable[..., None], *args: Any) -> Timer:
        """``loop.call_later`` on the running loop (call it from the loop's thread)."""
        return asyncio.get_running_loop().call_later(delay_s, callback, *args)
