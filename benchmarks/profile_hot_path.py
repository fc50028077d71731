"""Where a call's CPU goes: cProfile inside the calculator, the logger and the load generator.

    .venv/bin/python benchmarks/profile_hot_path.py [--rps 1000] [--seconds 5] [--top 12] [--keep DIR]

Starts the default lab (lab.yaml: every call logged and health-reported) in a temporary directory
with ``LAB_CPROFILE_DIR`` set, so every agent profiles its event-loop thread from READY to stop
(runtime/agent/profiler.py), sends ``--rps`` Add calls for ``--seconds`` through the lab's load
generator, stops the lab and prints, per process: CPU seconds (all threads, getrusage) per 10k
requests of the run, and the functions with the most own time on the loop thread.

cProfile rather than py-spy: py-spy needs ptrace rights that a shared machine or a container may
not grant; the in-process profile needs nothing. Its own overhead inflates the CPU figures (about
1.5-2x), so compare them only with each other; benchmarks/bench_full_lab.py measures without it.
"""

from __future__ import annotations

import argparse
import os
import pstats
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.agent.profiler import ENV_CPROFILE_DIR  # noqa: E402
from runtime.lab import Lab  # noqa: E402

PROFILED = ("calculator-1", "calculator-2", "logger-1", "loadgen-1")


def run(rps: int, seconds: int, folder: Path, lab_root: Path) -> int:
    """Run the load in a profiled default lab; returns how many requests were sent."""
    os.environ[ENV_CPROFILE_DIR] = str(folder)  # the daemon and so every service inherit it
    lab = Lab.up(lab_dir=lab_root / "lab", config=ROOT / "lab.yaml", linger_s=2, timeout_s=60)
    try:
        test = lab.start_load("calculator", rps=rps, duration_s=seconds, payload={"a": 2, "b": 3})
        summary = test.summary()
        print(
            f"load: {summary.total_requests} sent, achieved {summary.achieved_rps:.1f} rps, "
            f"p50 {summary.latency_p50_ms:.2f} ms, p99 {summary.latency_p99_ms:.2f} ms"
        )
        return int(summary.total_requests)
    finally:
        lab.down()
        del os.environ[ENV_CPROFILE_DIR]


def report(folder: Path, requests: int, top: int) -> None:
    """Print CPU per 10k requests and the top functions by own time, per profiled process."""
    for name in PROFILED:
        prof, cpu_file = folder / f"{name}.prof", folder / f"{name}.cpu"
        if not prof.exists():
            print(f"\n== {name}: no profile (did it stop gracefully?)")
            continue
        cpu_s, calls = cpu_file.read_text().split()
        per_10k = float(cpu_s) / max(1, requests) * 10_000
        print(f"\n== {name}: {float(cpu_s):.2f} CPU s in all, {per_10k:.2f} CPU s per 10k requests "
              f"({calls} unary calls timed by its agent)")  # fmt: skip
        stats = pstats.Stats(str(prof))
        stats.sort_stats("tottime").print_stats(top)


def main() -> int:
    """Profile one load run and print the per-process report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rps", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--keep", type=Path, default=None, help="keep the .prof files in this folder")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f} (1 min) at start")
    with tempfile.TemporaryDirectory(prefix="profile-hot-path-") as tmp:
        folder = args.keep or Path(tmp) / "prof"
        requests = run(args.rps, args.seconds, folder, Path(tmp))
        report(folder, requests, args.top)
    print(f"\nload avg {os.getloadavg()[0]:.1f} (1 min) at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
