"""Ships a Python process's `logging` records to the logger service.

INTERFACE STUB (owned by the logger issue, #4): the agent calls exactly these; the logger work
fills in the bodies (a non-blocking handler with a bounded queue, batching over StreamLogs,
replay after logger restarts, correlation id stamped from runtime.agent.correlation).

    handler = install(identity)    # adds the handler to the root logger; returns it
    ...
    uninstall(handler, timeout_s=2.0)   # flushes what it can, removes it
"""

from __future__ import annotations

import logging
import sys

from runtime.identity import Identity


def install(identity: Identity) -> logging.Handler:
    """Attach a handler to the root logger (stub: plain lines on stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"%(levelname)s {identity.instance_id} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler


def uninstall(handler: logging.Handler, timeout_s: float = 2.0) -> None:
    """Flush and detach the handler."""
    handler.flush()
    logging.getLogger().removeHandler(handler)
