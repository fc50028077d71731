"""Does uvloop still earn its place? A grpc.aio server on uvloop vs asyncio's loop, side by side.

    .venv/bin/python benchmarks/bench_event_loop.py [--rounds 4] [--seconds 5] [--rps 500]

Python services run on uvloop (runtime/services/main.py; ``LAB_EVENT_LOOP=asyncio`` for asyncio's
own loop). Each round starts two bare calculators (benchmarks/bare_calculator.py), one per loop,
and drives both AT THE SAME TIME with ghz: first ``--rps`` calls per second (open loop, like the
lab's load generator), then closed loop (``-c 50``). Both servers see the same machine at the same
moment, so the comparison holds on a shared, busy machine where back-to-back runs drift by more
than the difference measured. Printed per round: each server's CPU per call (all its threads) and
uvloop's change; then the median change per mode.

Target: uvloop's server CPU per call lower than asyncio's (median of the rounds, both modes).
Measured when it was made the default (grpcio 1.85.3, uvloop 0.23, 2 cores, load 4-7): -10 % at
500 rps (6 of 6 rounds), -15 % closed loop (median of 4).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_full_lab import ADD, PROTO, cpu_s, find_ghz, ok_count  # noqa: E402
from verdict import verdict  # noqa: E402

from runtime.identity import ENV_EVENT_LOOP, parse_ready_line  # noqa: E402

LOOPS = ("asyncio", "uvloop")
CLOSED_CONCURRENCY = 50
OPEN_CONCURRENCY = 20  # ghz workers for the fixed rate: enough that none waits for a slot


def start_server(loop: str) -> tuple[subprocess.Popen[str], str]:
    """A bare calculator on ``loop``; its process and address once it printed READY."""
    env = {**os.environ, ENV_EVENT_LOOP: loop}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "bare_calculator.py")],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    port = parse_ready_line(proc.stdout.readline())
    if port is None:
        proc.kill()
        raise RuntimeError(f"bare calculator on {loop} printed no READY line")
    return proc, f"127.0.0.1:{port}"


def ghz_cmd(binary: str, address: str, seconds: float, rps: int) -> list[str]:
    """ghz on Add: ``rps`` > 0 a fixed rate, else closed loop with CLOSED_CONCURRENCY workers."""
    load = ["-c", str(OPEN_CONCURRENCY), "--rps", str(rps)] if rps else ["-c", str(CLOSED_CONCURRENCY)]
    return [
        binary, "--insecure", "--proto", str(PROTO), "--import-paths", str(ROOT / "proto"),
        "--call", ADD, "-d", '{"a": 2, "b": 3}', *load, "-z", f"{seconds}s", "-O", "json", address,
    ]  # fmt: skip


def paired_round(binary: str, seconds: float, rps: int) -> dict[str, dict[str, float]]:
    """Both servers under the same ghz load at once: CPU per call (us) and OK calls per second."""
    servers = {loop: start_server(loop) for loop in LOOPS}
    try:
        before = {loop: cpu_s(proc.pid) for loop, (proc, _) in servers.items()}
        runs = {
            loop: subprocess.Popen(ghz_cmd(binary, address, seconds, rps), stdout=subprocess.PIPE, text=True)
            for loop, (_, address) in servers.items()
        }
        reports: dict[str, Any] = {
            loop: json.loads(run.communicate(timeout=seconds + 60)[0]) for loop, run in runs.items()
        }
        used = {loop: cpu_s(proc.pid) - before[loop] for loop, (proc, _) in servers.items()}
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=10)
    return {
        loop: {
            "cpu_us": used[loop] / max(1, ok_count(reports[loop])) * 1e6,
            "rps": float(reports[loop]["rps"]),
        }
        for loop in LOOPS
    }


def main() -> int:
    """Both loops at once, ``--rounds`` times per mode; prints each round and the median change."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rps", type=int, default=500, help="the fixed rate of the open-loop mode")
    args = parser.parse_args()
    binary = find_ghz()
    print(f"{os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f} (1 min) at start; ghz {binary}")
    missed = []
    for mode, rps in ((f"{args.rps} rps", args.rps), (f"closed -c {CLOSED_CONCURRENCY}", 0)):
        changes = []
        for k in range(args.rounds):
            r = paired_round(binary, args.seconds, rps)
            changes.append(r["uvloop"]["cpu_us"] / r["asyncio"]["cpu_us"] - 1)
            print(
                f"{mode:>14} round {k + 1}: "
                + "  ".join(
                    f"{loop} {r[loop]['cpu_us']:4.0f} us/call ({r[loop]['rps']:5.0f}/s)" for loop in LOOPS
                )
                + f"  uvloop {changes[-1]:+.0%}  (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
        median = statistics.median(changes)
        print(f"{mode:>14}: uvloop's server CPU per call {median:+.1%} vs asyncio (median of {args.rounds})")
        if median >= 0:
            missed.append(f"uvloop not cheaper ({mode})")
    print(f"load avg {os.getloadavg()[0]:.1f} (1 min) at the end")
    return verdict(missed)


if __name__ == "__main__":
    sys.exit(main())
