"""State service figures: CAS throughput (alone and contended) and lock handoff latency.

    .venv/bin/python benchmarks/bench_state.py [--seconds 3] [--threads 4] [--handoffs 50]

1. increments/s of one client doing Get + CompareAndSwap in a loop (2 RPCs per increment);
2. the same with ``--threads`` clients on one key: increments/s, and lost races per increment;
3. lock handoff: a waiter blocked in AcquireLock(wait_ms) gets the lock after the holder's
   ReleaseLock; p50/p95 from just before the release to the waiter's grant.

Starts its own state service (SQLite in a temporary lab dir, WAL) and stops it by pid afterwards.
The design sets no target for these; they are printed for comparison between runs and machines.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.identity import parse_ready_line  # noqa: E402
from runtime.v1 import state_pb2, state_pb2_grpc  # noqa: E402

RPC_S = 5.0


def start_state(lab_dir: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    env.update(LAB_DIR=lab_dir, LAB_SERVICE="state", LAB_INSTANCE="state-1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.services.state"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        port = parse_ready_line(line)
        if port:
            return proc, f"127.0.0.1:{port}"
    raise SystemExit("the state service exited before READY")


def increment(stub: state_pb2_grpc.StateServiceStub, key: str) -> int:
    lost = 0
    while True:
        cur = stub.Get(state_pb2.StateKey(key=key), timeout=RPC_S)
        req = state_pb2.CASRequest(
            key=key, expected_version=cur.version, new_value=str(int(cur.value or 0) + 1)
        )
        if stub.CompareAndSwap(req, timeout=RPC_S).swapped:
            return lost
        lost += 1


def cas_rate(address: str, key: str, threads: int, seconds: float) -> tuple[float, float]:
    """(increments/s, lost races per increment) of ``threads`` clients on one key."""
    stop = time.monotonic() + seconds

    def run(_: int) -> tuple[int, int]:
        done = lost = 0
        with grpc.insecure_channel(address) as ch:
            stub = state_pb2_grpc.StateServiceStub(ch)
            while time.monotonic() < stop:
                lost += increment(stub, key)
                done += 1
        return done, lost

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(run, range(threads)))
    done = sum(d for d, _ in results)
    lost = sum(lost for _, lost in results)
    with grpc.insecure_channel(address) as ch:
        final = state_pb2_grpc.StateServiceStub(ch).Get(state_pb2.StateKey(key=key), timeout=RPC_S)
    assert final.value == str(done), (final.value, done)  # exact, or the benchmark is meaningless
    return done / seconds, lost / max(done, 1)


def handoffs(address: str, n: int) -> list[float]:
    """Release -> waiter granted, in ms, ``n`` times."""
    out = []
    with grpc.insecure_channel(address) as ch:
        stub = state_pb2_grpc.StateServiceStub(ch)
        for i in range(n):
            name = f"bench-lock-{i}"
            held = stub.AcquireLock(
                state_pb2.LockRequest(name=name, owner="holder", ttl_ms=10_000), timeout=RPC_S
            )
            granted: list[float] = []

            def wait(name: str = name, granted: list[float] = granted) -> None:
                req = state_pb2.LockRequest(name=name, owner="waiter", ttl_ms=10_000, wait_ms=5000)
                if stub.AcquireLock(req, timeout=RPC_S + 5).acquired:
                    granted.append(time.perf_counter())

            waiter = threading.Thread(target=wait)
            waiter.start()
            time.sleep(0.02)  # the waiter is blocked in AcquireLock by now
            t0 = time.perf_counter()
            stub.ReleaseLock(state_pb2.LockId(lock_id=held.lock_id), timeout=RPC_S)
            waiter.join(10)
            out.append((granted[0] - t0) * 1000)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--handoffs", type=int, default=50)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-state-") as lab_dir:
        proc, address = start_state(lab_dir)
        try:
            alone, _ = cas_rate(address, "alone", 1, args.seconds)
            together, lost = cas_rate(address, "together", args.threads, args.seconds)
            lat = sorted(handoffs(address, args.handoffs))
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"CAS increments/s, 1 client (Get + CAS each)     {alone:8.0f}")
    print(
        f"CAS increments/s, {args.threads} clients on one key       {together:8.0f}   lost races per increment {lost:.2f}"
    )
    p95 = lat[int(0.95 * (len(lat) - 1))]
    print(f"lock handoff release -> waiter granted, ms      p50 {statistics.median(lat):.2f}   p95 {p95:.2f}")


if __name__ == "__main__":
    main()
