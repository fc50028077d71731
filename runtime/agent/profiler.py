"""An opt-in profile of a service's event loop, for benchmarks/profile_hot_path.py.

With ``LAB_CPROFILE_DIR=<dir>`` in its environment, an agent runs cProfile on its event-loop
thread from ``start()`` to ``stop()`` and writes ``<dir>/<instance id>.prof`` (pstats) and
``<dir>/<instance id>.cpu`` (process CPU seconds, all threads, from getrusage, and the number of
unary calls the DEGRADED rule timed). Without the variable nothing is imported or enabled: the
per-call path pays nothing for this.

Why cProfile in the process rather than py-spy from outside: it needs no ptrace permission and
no extra package, and the hot path (interceptors, handler, log emit) all runs on the loop thread.

Example:
    >>> Profile.from_env({}) is None
    True
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from typing import Any

from runtime.identity import ENV_CPROFILE_DIR


def cpu_seconds() -> float:
    """User + system CPU seconds this process used so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Profile:
    """cProfile on the calling thread plus the process's CPU time, written out at ``stop()``."""

    def __init__(self, folder: str, name: str) -> None:
        import cProfile  # only when asked for: a service without the switch never imports it

        self.folder = folder
        self.name = name
        self._profile: Any = cProfile.Profile()
        self._cpu0 = 0.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, name: str = "service") -> Profile | None:
        """A profile when ``LAB_CPROFILE_DIR`` is set, else None."""
        folder = (os.environ if env is None else env).get(ENV_CPROFILE_DIR, "")
        return cls(folder, name) if folder else None

    def start(self) -> None:
        """Begin profiling this thread and counting CPU time."""
        self._cpu0 = cpu_seconds()
        self._profile.enable()

    def stop(self, calls: int) -> str:
        """Stop and write ``<name>.prof`` and ``<name>.cpu``; returns the .prof path."""
        self._profile.disable()
        cpu = cpu_seconds() - self._cpu0
        os.makedirs(self.folder, exist_ok=True)
        path = os.path.join(self.folder, f"{self.name}.prof")
        self._profile.dump_stats(path)
        with open(os.path.join(self.folder, f"{self.name}.cpu"), "w", encoding="ascii") as fh:
            fh.write(f"{cpu:.6f} {calls}\n")
        return path
