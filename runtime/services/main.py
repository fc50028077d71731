"""How every lab service process starts: ``python -m runtime.services.<name>`` runs ``run(main)``.

    # runtime/services/broker/__main__.py
    from runtime.services.broker.servicer import main
    from runtime.services.main import run

    run(main)

The service's ``main()`` coroutine builds its servicer on an :class:`~runtime.agent.Agent`, which
binds 127.0.0.1, prints the READY line, serves until SIGTERM and stops gracefully. ``run`` only owns
the process boundary: one event loop, and Ctrl-C in a terminal ends with the shell's usual 130
instead of a traceback.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from runtime.identity import EXIT_INTERRUPTED


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run one service's ``main()`` coroutine as this process's whole life."""
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
