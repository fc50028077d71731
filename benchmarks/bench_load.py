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

from runtime.lab import Lab  # noqa: E402

TARGET_RPS_ERROR = 0.01
TARGET_LAG_P99_MS = 5.0
SERVICE = """
  {name}:
    command: [python, -m, {module}]
    restart: always
    restart_delay_s: 0.2
    depends_on: {{broker: ready}}
"""
BASE = """
linger_s: 2
services:
  broker:
    command: [python, -m, runtime.services.broker]
    restart: always
    restart_delay_s: 0.1
    sticky_port: true
  calculator:
    command: [python, -m, calculator.server]
    instances: 2
    restart: always
    restart_delay_s: 0.3
    depends_on: {broker: ready}
"""
LABS = {
    "bare": [("loadgen", "runtime.services.load")],
    "full": [
        ("loadgen", "runtime.services.load"),
        ("health", "runtime.services.health"),
        ("logger", "runtime.services.logger"),
    ],
}


def measure(kind: str, rps: int, seconds: int) -> dict[str, float]:
    """One lab of ``kind``: warm up, then ``rps`` for ``seconds``; the summary's figures."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-load-{kind}-"))
    config = tmp / "lab.yaml"
    config.write_text(BASE + "".join(SERVICE.format(name=n, module=m) for n, m in LABS[kind]))
    lab = Lab.up(lab_dir=tmp / "lab", config=config, linger_s=2, timeout_s=30)
    try:
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
    finally:
        lab.down()


def main() -> None:
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


if __name__ == "__main__":
    main()
