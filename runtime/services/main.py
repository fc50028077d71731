"""How every lab service process starts: ``python -m runtime.services.<name>`` runs ``run(main)``.

    # runtime/services/broker/__main__.py
    from runtime.services.broker.servicer import main
    from runtime.services.main import run

    run(main)

The service's ``main()`` coroutine builds its servicer on an :class:`~runtime.agent.Agent`, which
binds 127.0.0.1, prints the READY line, serves until SIGTERM and stops gracefully. ``run`` only owns
the process boundary: one event loop, and Ctrl-C in a terminal ends with the shell's usual 130
instead of a traceback.

The event loop is uvloop's (libuv, in Cython) rather than asyncio's default selector loop: grpc.aio
wakes the loop for every completed call, so the loop's own cost is paid per request, and uvloop
pays less of it (a grpc.aio server or client about 10 % less CPU per call at a fixed rate, 15 %
under ghz; the whole lab at 1000 rps 5-10 %). ``LAB_EVENT_LOOP=asyncio`` in the environment (the
supervisor passes its own environment on to every service) runs asyncio's default loop instead,
e.g. to rule uvloop out when a service misbehaves. Only service processes choose their loop here:
a notebook kernel owns its loop and never calls ``run``, and no event loop policy is installed.

uvloop's timers count whole milliseconds: a sleep under 0.5 ms returns at once (see the load
generator's MIN_SLEEP_S in runtime/services/load/schedule.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any

# Imported here, not when run() picks the loop: the supervisor's fork server preloads the service
# modules (and so this one) once, and every forked service finds uvloop already imported.
import uvloop

from runtime.identity import ENV_EVENT_LOOP, EXIT_INTERRUPTED

EVENT_LOOPS = ("uvloop", "asyncio")


def loop_factory(choice: str | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop constructor ``LAB_EVENT_LOOP`` names (``uvloop`` when unset); None: asyncio's.

    >>> loop_factory("asyncio") is None
    True
    >>> loop_factory("trio")
    Traceback (most recent call last):
    ...
    ValueError: LAB_EVENT_LOOP='trio': expected one of uvloop, asyncio
    """
    name = (os.environ.get(ENV_EVENT_LOOP, "") if choice is None else choice).strip().lower() or "uvloop"
    if name not in EVENT_LOOPS:
        raise ValueError(f"{ENV_EVENT_LOOP}={name!r}: expected one of {', '.join(EVENT_LOOPS)}")
    return None if name == "asyncio" else uvloop.new_event_loop


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run one service's ``main()`` coroutine as this process's whole life."""
    try:
        # asyncio.Runner takes the loop factory directly: no event loop policy is installed.
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(main())
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
