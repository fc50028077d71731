"""Load generator figures, measured side by side with their targets.

    .venv/bin/python benchmarks/bench_load.py [--rps 1000] [--seconds 5]

Against the Python calculator (two instances), through the load generator service, in two labs:

* ``bare``: broker, calculators, loadgen: what the generator itself holds;
* ``full``: plus health and logger, as in lab.yaml (every calculator call is logged and shipped).

For each: achieved vs asked RPS (target within 1 %), send-schedule lag p99 (target <= 5 ms), and
the latency p50 / p99 / p99.9 measured from the intended send times. A 1 s warm-up at a fifth of
the rate opens the channels first. Runs its labs in temporary directories and stops them afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from verdict import verdict  # noqa: E402

from runtime.lab import Lab  # noqa: E402

TARGET_RPS_ERROR = 0.01
TARGET_LAG_P99_MS = 5.0
# The lab files the tests use: tests/labs/load.yaml ("bare") and load-full.yaml ("full").
LABS = {"bare": ROOT / "tests" / "labs" / "load.yaml", "full": ROOT / "tests" / "labs" / "load-full.yaml"}


def measure(kind: str, rps: int, seconds: int) -> dict[str, float]:
    """Measure in a fresh lab of ``kind``, in a temporary directory removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=f"bench-load-{kind}-") as tmp:
        lab = Lab.up(lab_dir=Path(tmp) / "lab", config=LABS[kind], linger_s=2, timeout_s=30)
        try:
            return _measure(lab, rps, seconds)
        finally:
            lab.down()  # before the directory goes: the lab keeps its files there


def _measure(lab: Lab, rps: int, seconds: int) -> dict[str, float]:
    """Warm up at a fifth of the rate, then ``rps`` for ``seconds``; the summary's figures."""
    lab.start_load("calculator", rps=max(1, rps // 5), duration_s=1).wait()
    test = lab.start_load("calculator", rps=rps, duration_s=seconds)
    summary = test.summary()
    assert test.final is not None
    return {
        "achieved": summary.achieved_rps,
        "lag_p99": test.final.send_lag_p99_ms,
        "p50": summary.latency_p50_ms,
        "p99": summary.latency_p99_ms,
        "p999": summary.latency_p999_ms,
        "failed": summary.total_failed,
        "sent": summary.total_requests,
    }


def main() -> int:
    """Measure both labs and print the figures next to the targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rps", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    load1, _, _ = os.getloadavg()
    print(
        f"{args.rps} rps for {args.seconds} s against 2 Python calculators; {os.cpu_count()} CPUs, load avg {load1:.1f}"
    )
    results = {kind: measure(kind, args.rps, args.seconds) for kind in LABS}
    kinds = list(results)
    print(f"{'figure':<28}{'target':<14}" + "".join(f"{k:>26}" for k in kinds))

    def row(name: str, target: str, cells: list[str]) -> None:
        print(f"{name:<28}{target:<14}" + "".join(f"{c:>26}" for c in cells))

    row("achieved / asked rps", "within 1 %", [
        f"{r['achieved']:.1f} / {args.rps} ({(r['achieved'] - args.rps) / args.rps:+.2%})" for r in results.values()
    ])  # fmt: skip
    row(
        "send-schedule lag p99",
        f"<= {TARGET_LAG_P99_MS:g} ms",
        [f"{r['lag_p99']:.2f} ms" for r in results.values()],
    )
    row("latency p50", "", [f"{r['p50']:.2f} ms" for r in results.values()])
    row("latency p99", "", [f"{r['p99']:.2f} ms" for r in results.values()])
    row("latency p99.9", "", [f"{r['p999']:.2f} ms" for r in results.values()])
    row("failed / sent", "0", [f"{r['failed']:.0f} / {r['sent']:.0f}" for r in results.values()])
    ok = [
        abs(r["achieved"] - args.rps) / args.rps <= TARGET_RPS_ERROR and r["lag_p99"] <= TARGET_LAG_P99_MS
        for r in results.values()
    ]
    row("meets both targets", "", ["yes" if o else "NO" for o in ok])
    return verdict([f"{kind} lab" for kind, o in zip(results, ok, strict=True) if not o])


if __name__ == "__main__":
    sys.exit(main())
