"""Wait for the event a test stands on, never for a fixed time.

    wait_until(lambda: lab.load.tests().empty, 10, "the abandoned test to end")

A fixed ``time.sleep`` either wastes time on a quiet machine or flakes on a loaded one; a wait on
the event itself (with a timeout and a message that names it) does neither. ``wait_until``
returns the predicate's first truthy value, so a test can wait for and use a result in one step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.02  # how often the predicate is asked: fast enough for ms targets, cheap enough for 2 cores
DEFAULT_TIMEOUT_S = 10.0


class WaitTimeout(AssertionError):
    """The awaited event did not happen in time (an AssertionError, so pytest reports it as a failure)."""


def wait_until(
    predicate: Callable[[], T | None],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    what: str = "the condition",
    *,
    poll_s: float = POLL_S,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Ask ``predicate`` until it returns something truthy; return that value.

    Args:
        predicate: called every ``poll_s`` seconds; its first truthy result is returned.
        timeout_s: how long to wait before failing.
        what: the awaited event, for the failure message ("calculator-1 HEALTHY again").
        ignore: exception types that count as "not yet" (a service that is restarting).

    Raises:
        WaitTimeout: naming ``what``, the timeout and the last value or error seen.
    """
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            value = predicate()
        except ignore as exc:
            value, last = None, exc
        else:
            last = value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"timed out after {timeout_s:g} s waiting for {what} (last seen: {last!r:.200})"
            )
        time.sleep(poll_s)
