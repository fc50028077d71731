"""How a benchmark says whether it met its targets: one exit code that ``make bench`` reads.

    sys.exit(verdict(["crash -> UNHEALTHY p95"]))   # prints the misses, exits MISSED_EXIT

Exit 0: every target met. ``MISSED_EXIT``: it ran to the end and missed at least one target (the
figures are printed). Anything else (1 for an uncaught exception, a signal, a timeout) means it
failed to measure. ``run_all.py`` tells the three apart and runs every benchmark either way.
"""

from __future__ import annotations

MISSED_EXIT = 3


def verdict(missed: list[str]) -> int:
    """Print which targets were missed (or that all were met); the exit code for ``sys.exit``."""
    if missed:
        print(f"missed: {', '.join(missed)}")
        return MISSED_EXIT
    print("all targets met")
    return 0
