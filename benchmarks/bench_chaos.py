"""Chaos figures: how fast a fault takes effect, ends, and is dropped when the chaos service dies.

    .venv/bin/python benchmarks/bench_chaos.py [--rounds 10]

1. inject -> applied: from InjectFault returning to the first call that pays the delay, p50/p95;
2. clear -> gone: from ClearFault returning to the first fast call, p50/p95;
3. dead-man switch: chaos service SIGKILLed -> the agent dropped the fault (first fast call), p50/p95;
4. for reference, the median call with no fault active.

Calls go straight to one calculator instance (no broker, no retry), one after another, each with
a 20 ms deadline: with the 200 ms delay in place a poll ends DEADLINE_EXCEEDED, without it it
answers. So each figure has a resolution of about one poll (<= 20 ms). Runs its own lab in a
temporary directory and stops it afterwards.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from verdict import verdict  # noqa: E402

from calculator.v1 import calculator_pb2, calculator_pb2_grpc  # noqa: E402
from runtime.client import auth  # noqa: E402
from runtime.client.percentiles import percentile  # noqa: E402
from runtime.lab import Lab  # noqa: E402

DELAY_MS = 200
POLL_DEADLINE_S = 0.02
WAIT_S = 10.0
TARGET_DEAD_MAN_MS = 1000.0  # "quickly": well inside a second
DEAD_MAN_ROUNDS = 3  # each one restarts the chaos service; lab.yaml's start limit is 5 in 30 s
LAB_FILE = ROOT / "tests" / "labs" / "chaos-bench.yaml"  # broker, chaos, one calculator


def call_ms(stub: calculator_pb2_grpc.CalculatorServiceStub) -> float:
    started = time.monotonic()
    stub.Add(calculator_pb2.AddRequest(a=1, b=2), timeout=5)
    return (time.monotonic() - started) * 1000


def until(stub: calculator_pb2_grpc.CalculatorServiceStub, slow: bool, since: float) -> float:
    """ms from ``since`` to the end of the first poll that is delayed (or answers in time)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            stub.Add(calculator_pb2.AddRequest(a=1, b=2), timeout=POLL_DEADLINE_S)
            delayed = False
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.DEADLINE_EXCEEDED:  # type: ignore[attr-defined]
                raise
            delayed = True
        if delayed == slow:
            return (time.monotonic() - since) * 1000
    raise TimeoutError(f"no {'delayed' if slow else 'prompt'} call within {WAIT_S} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-chaos-") as tmp:
        lab = Lab.up(lab_dir=Path(tmp) / "lab", config=LAB_FILE, linger_s=2)
        try:
            address = lab.lookup("calculator").address.iloc[0]
            with auth.insecure_channel(address, token=lab.token) as channel:
                stub = calculator_pb2_grpc.CalculatorServiceStub(channel)
                plain = statistics.median(call_ms(stub) for _ in range(200))
                applied, cleared, dead = [], [], []
                for _ in range(args.rounds):
                    fid = lab.inject("calculator", "delay", delay_ms=DELAY_MS)
                    applied.append(until(stub, True, time.monotonic()))
                    lab.chaos.clear(fid)
                    cleared.append(until(stub, False, time.monotonic()))
                for _ in range(DEAD_MAN_ROUNDS):
                    lab.inject("calculator", "delay", delay_ms=DELAY_MS)
                    until(stub, True, time.monotonic())
                    started = time.monotonic()  # includes asking the supervisor for the SIGKILL
                    killed = lab.kill("chaos")
                    dead.append(until(stub, False, started))
                    lab.wait_restarted("chaos-1", killed["pid"])
        finally:
            lab.down()
    print(f"median call, no fault:          {plain:7.2f} ms")
    for name, values in (("inject -> applied", applied), ("clear -> gone", cleared), ("dead-man drop", dead)):
        print(
            f"{name:<32}{percentile(values, 50):7.1f} ms p50 {percentile(values, 95):7.1f} ms p95  (n={len(values)})"
        )
    ok = percentile(dead, 95) <= TARGET_DEAD_MAN_MS
    print(f"dead-man p95 target <= {TARGET_DEAD_MAN_MS:.0f} ms: {'OK' if ok else 'MISSED'}")
    return verdict([] if ok else ["dead-man drop p95"])


if __name__ == "__main__":
    sys.exit(main())
