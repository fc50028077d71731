"""Run every benchmark, even when one misses its target or fails; report them all at the end.

    .venv/bin/python benchmarks/run_all.py [bench_load.py ...]     # `make bench`

Each ``bench_*.py`` runs as its own process (so one that crashes, hangs or leaves threads cannot
spoil the next) with a time limit, its output passed through as it comes. The exit codes follow
``verdict.py``: 0 met, ``MISSED_EXIT`` missed a target, anything else failed. At the end: one line
per benchmark, then the misses and failures; the exit code is 1 when any benchmark failed or
missed, so CI and ``make`` see it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from verdict import MISSED_EXIT

HERE = Path(__file__).resolve().parent
TIME_LIMIT_S = 900.0  # the slowest (bench_load, bench_polyglot) take a few minutes on 2 cores


def run(script: Path, limit_s: float) -> tuple[str, float]:
    """Run one benchmark; ('met' | 'missed' | 'failed: ...', seconds)."""
    started = time.monotonic()
    print(f"== {script.name}", flush=True)
    try:
        code = subprocess.run([sys.executable, str(script)], timeout=limit_s, check=False).returncode
    except subprocess.TimeoutExpired:
        return f"failed: still running after {limit_s:.0f} s (stopped)", time.monotonic() - started
    took = time.monotonic() - started
    if code == 0:
        return "met", took
    if code == MISSED_EXIT:
        return "missed", took
    how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    return f"failed: {how}", took


def main() -> int:
    """Run the named benchmarks (default: every benchmarks/bench_*.py) and summarise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scripts", nargs="*", help="benchmark files (default: every bench_*.py)")
    parser.add_argument("--time-limit-s", type=float, default=TIME_LIMIT_S)
    args = parser.parse_args()
    scripts = [Path(s).resolve() for s in args.scripts] or sorted(HERE.glob("bench_*.py"))
    results = {script.name: run(script, args.time_limit_s) for script in scripts}
    print("\n== summary")
    for name, (outcome, took) in results.items():
        print(f"{name:<24} {outcome:<50} {took:6.0f} s")
    missed = [n for n, (o, _) in results.items() if o == "missed"]
    failed = [n for n, (o, _) in results.items() if o.startswith("failed")]
    if missed:
        print(f"missed a target: {', '.join(missed)}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    if not missed and not failed:
        print("every benchmark met its targets")
    return 1 if missed or failed else 0


if __name__ == "__main__":
    sys.exit(main())
