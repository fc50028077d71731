"""Logger figures, measured in one run next to their targets.

    .venv/bin/python benchmarks/bench_logger.py

1. Ingest through StreamLogs with batching (carrier entries of 250, as LogShipper sends them), a
   real logger process committing to SQLite: >= 50,000 entries/s, nothing lost (ack and row count).
   Also through LogShipper.emit() + flush(), the path every service and the supervisor use.
2. Emit -> SubscribeLogs delivery at 1,000 entries/s through LogShipper: p99 <= 50 ms.
3. Query over a full 10k ring with a text filter (in the store, and over gRPC): <= 20 ms; plus
   ``lab.logs(limit=1000)`` end to end (batched QueryLogs -> DataFrame), for information.
4. FTS5 query over 1,000,000 persisted entries (the DB is built directly): <= 200 ms.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from verdict import verdict  # noqa: E402

from runtime.client.logship import CARRIER_SIZE, LogShipper  # noqa: E402
from runtime.client.percentiles import percentile  # noqa: E402
from runtime.identity import LOGS_DB_FILE, parse_ready_line  # noqa: E402
from runtime.lab import logs as lab_logs  # noqa: E402
from runtime.services.logger.db import LogDB  # noqa: E402
from runtime.services.logger.filter import Selector  # noqa: E402
from runtime.services.logger.store import LogStore  # noqa: E402
from runtime.v1 import logger_pb2 as pb  # noqa: E402
from runtime.v1 import logger_pb2_grpc  # noqa: E402

INGEST_ENTRIES = 300_000
INGEST_TARGET = 50_000
TAIL_RATE = 1000
TAIL_SECONDS = 5.0
TAIL_P99_TARGET_MS = 50.0
RING_ENTRIES = 10_000
RING_TARGET_MS = 20.0
FTS_ENTRIES = int(os.environ.get("BENCH_FTS_ENTRIES", 1_000_000))
FTS_TARGET_MS = 200.0
REPEATS = 20
READY_TIMEOUT_S = 15.0
RPC_TIMEOUT_S = 60.0
OPS = ("Add", "Subtract", "Multiply", "Divide")
WORDS = [f"w{i:04d}" for i in range(2000)]  # vocabulary for searchable but selective messages


def message(i: int, rng: random.Random) -> str:
    """A calculator-like log line with two random vocabulary words."""
    a, b = rng.randint(0, 99), rng.randint(1, 99)
    return f"{OPS[i % 4]}({a},{b}) served for {rng.choice(WORDS)} {rng.choice(WORDS)} request {i}"


def entries(n: int, seed: int = 1) -> list[pb.LogEntry]:
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    return [
        pb.LogEntry(
            service_name="calculator",
            instance_id=f"calculator-{i % 2 + 1}",
            level=pb.INFO if i % 50 else pb.ERROR,
            message=message(i, rng),
            timestamp=now,
            correlation_id=f"req-{i:08x}",
            source="logging",
        )  # fmt: skip
        for i in range(n)
    ]


class Logger:
    """A logger process in a temp lab dir."""

    def __init__(self, lab_dir: str, ring: int = RING_ENTRIES) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
        env.update(LAB_DIR=lab_dir, LAB_SERVICE="logger", LAB_INSTANCE="logger-1", LAB_LOG_RING=str(ring))
        env.update(LAB_LOG_RETENTION=str(4 * INGEST_ENTRIES))  # count every row in the ingest check
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.services.logger"], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT_S
        port = None
        while port is None and time.monotonic() < deadline:
            line = self.proc.stdout.readline()  # type: ignore[union-attr]
            if not line:
                break
            port = parse_ready_line(line)
        if port is None:
            self.stop()
            raise SystemExit("logger printed no READY line")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # type: ignore[union-attr]
        self.address = f"127.0.0.1:{port}"
        self.channel = grpc.insecure_channel(self.address)
        self.stub = logger_pb2_grpc.LoggerServiceStub(self.channel)

    def stop(self) -> None:
        if getattr(self, "channel", None) is not None:
            self.channel.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def bench_ingest(tmp: str) -> bool:
    lab = os.path.join(tmp, "ingest")
    os.makedirs(lab)
    logger = Logger(lab)
    try:
        batch = entries(INGEST_ENTRIES)
        carriers = [
            pb.LogEntry(batch=batch[i : i + CARRIER_SIZE]) for i in range(0, len(batch), CARRIER_SIZE)
        ]
        t0 = time.perf_counter()
        ack = logger.stub.StreamLogs(iter(carriers), timeout=RPC_TIMEOUT_S)
        rate = INGEST_ENTRIES / (time.perf_counter() - t0)
        shipper = LogShipper(logger_address=logger.address, name="bench", buffer_max=INGEST_ENTRIES)
        t0 = time.perf_counter()
        for e in batch:
            shipper.emit(e)
        flushed = shipper.flush(RPC_TIMEOUT_S)
        ship_rate = INGEST_ENTRIES / (time.perf_counter() - t0)
        shipper.close()
    finally:
        logger.stop()
    with sqlite3.connect(os.path.join(lab, LOGS_DB_FILE)) as db:
        rows = db.execute("SELECT count(*) FROM logs").fetchone()[0]
    lost = 2 * INGEST_ENTRIES - rows
    ok = rate >= INGEST_TARGET and ack.accepted == INGEST_ENTRIES and lost == 0 and flushed
    print(f"ingest StreamLogs (carriers of {CARRIER_SIZE}): {rate:,.0f} entries/s  "
          f"(target >= {INGEST_TARGET:,}; {rate / INGEST_TARGET:.2f}x)  acked {ack.accepted:,}/{INGEST_ENTRIES:,}")  # fmt: skip
    print(f"ingest LogShipper.emit+flush:       {ship_rate:,.0f} entries/s  "
          f"dropped {shipper.stats.dropped}; rows in SQLite {rows:,} of {2 * INGEST_ENTRIES:,} -> lost {lost}")  # fmt: skip
    return ok


def bench_tail(tmp: str) -> bool:
    lab = os.path.join(tmp, "tail")
    os.makedirs(lab)
    logger = Logger(lab)
    lat_ms: list[float] = []
    try:
        call = logger.stub.SubscribeLogs(pb.LogFilter(service_names=["tail"]))

        def read() -> None:
            try:
                for e in call:
                    lat_ms.append((time.time_ns() // 1000 - e.timestamp_us) / 1000)
            except grpc.RpcError:
                pass

        reader = threading.Thread(target=read, name="bench-tail")
        reader.start()
        time.sleep(0.3)
        shipper = LogShipper(logger_address=logger.address, name="bench")
        n = int(TAIL_RATE * TAIL_SECONDS)
        start = time.perf_counter()
        for i in range(n):
            due = start + i / TAIL_RATE
            while (now := time.perf_counter()) < due:
                time.sleep(min(0.001, due - now))
            us = time.time_ns() // 1000
            shipper.emit(
                pb.LogEntry(service_name="tail", message=f"tick {i}", timestamp=us // 1000, timestamp_us=us)
            )
        shipper.flush(10)
        deadline = time.monotonic() + 5
        while len(lat_ms) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        call.cancel()
        reader.join(5)
        shipper.close()
    finally:
        logger.stop()
    p50, p99 = percentile(lat_ms, 50), percentile(lat_ms, 99)
    print(f"emit -> SubscribeLogs at {TAIL_RATE}/s: p50 {p50:.1f} ms  p99 {p99:.1f} ms  "
          f"(target p99 <= {TAIL_P99_TARGET_MS:.0f} ms; {TAIL_P99_TARGET_MS / p99:.1f}x headroom)  received {len(lat_ms)}/{n}")  # fmt: skip
    return p99 <= TAIL_P99_TARGET_MS and len(lat_ms) == n


def bench_ring(tmp: str) -> bool:
    store = LogStore(None, ring_size=RING_ENTRIES)
    store.append(entries(RING_ENTRIES, seed=2))
    word = WORDS[7]
    sel = Selector.build(search=word, limit=1000)
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        found, origin = store.query(sel)
        times.append((time.perf_counter() - t0) * 1000)
    assert origin == "ring"
    lab = os.path.join(tmp, "ring")
    os.makedirs(lab)
    logger = Logger(lab)
    try:
        logger.stub.StreamLogs(
            iter([pb.LogEntry(batch=entries(RING_ENTRIES, seed=2))]), timeout=RPC_TIMEOUT_S
        )
        rpc = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            call = logger.stub.QueryLogs(pb.LogQuery(search_text=word, limit=1000), timeout=RPC_TIMEOUT_S)
            got = list(call)
            rpc.append((time.perf_counter() - t0) * 1000)
        source = dict(call.trailing_metadata())["x-log-source"]
        frames = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            page = lab_logs.logs_frame(logger.channel, limit=1000)
            frames.append((time.perf_counter() - t0) * 1000)
    finally:
        logger.stop()
    p50, worst = percentile(times, 50), max(times)
    print(f"ring query, {RING_ENTRIES:,} entries, text filter ({len(found)} hits): p50 {p50:.1f} ms  max {worst:.1f} ms  "
          f"(target <= {RING_TARGET_MS:.0f} ms; {RING_TARGET_MS / worst:.1f}x)")  # fmt: skip
    print(f"  same over gRPC QueryLogs (answered from {source}, {len(got)} entries streamed): "
          f"p50 {percentile(rpc, 50):.1f} ms  max {max(rpc):.1f} ms")  # fmt: skip
    print(f"  lab.logs(limit=1000) -> DataFrame of {len(page)} rows (batched QueryLogs): "
          f"p50 {percentile(frames, 50):.1f} ms  max {max(frames):.1f} ms")  # fmt: skip
    return worst <= RING_TARGET_MS


def bench_fts(tmp: str) -> bool:
    path = os.path.join(tmp, "fts.sqlite")
    db = LogDB(path, retention=FTS_ENTRIES * 2)
    t0 = time.perf_counter()
    seq = 0
    for chunk in range(0, FTS_ENTRIES, 50_000):
        part = entries(50_000, seed=chunk)
        for e in part:
            seq += 1
            e.sequence = seq
        db.insert(part)
    build_s = time.perf_counter() - t0
    results = []
    for label, sel in (
        ("one rare word", Selector.build(search=WORDS[11], limit=1000)),
        ("two words", Selector.build(search=f"{WORDS[3]} {WORDS[5]}", limit=1000)),
        ("common word, newest 100", Selector.build(search="served", limit=100, newest_first=True)),
        (
            "word + service + level",
            Selector.build(search=WORDS[42], services=["calculator"], min_level=pb.ERROR),
        ),
    ):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            found = db.select(sel)
            times.append((time.perf_counter() - t0) * 1000)
        results.append((label, len(found), max(times)))
    db.close()
    print(f"FTS5 over {FTS_ENTRIES:,} persisted entries (built in {build_s:.1f} s, "
          f"{os.path.getsize(path) / 1e6:.0f} MB):")  # fmt: skip
    for label, hits, worst in results:
        print(f"  {label:<26} {hits:>5} hits  max {worst:6.1f} ms  (target <= {FTS_TARGET_MS:.0f} ms; "
              f"{FTS_TARGET_MS / worst:.1f}x)")  # fmt: skip
    return all(worst <= FTS_TARGET_MS for _, _, worst in results)


def main() -> int:
    """Run every measurement; exit MISSED_EXIT (verdict.py) if a target is missed."""
    with tempfile.TemporaryDirectory(prefix="bench-logger-") as tmp:
        ok = {
            "ingest": bench_ingest(tmp),
            "emit -> subscriber p99": bench_tail(tmp),
            "ring query": bench_ring(tmp),
            "FTS query": bench_fts(tmp),
        }
    return verdict([name for name, met in ok.items() if not met])


if __name__ == "__main__":
    sys.exit(main())
