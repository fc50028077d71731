"""Lifecycle figures of the core runtime, measured side by side in one run.

    .venv/bin/python benchmarks/bench_lifecycle.py [--crashes 10] [--cold-starts 3] [--startup-only]

Prints, next to DESIGN.md's targets (and issue 14's: start <= 1.5 s, idle USS <= 300 MB):
- Lab.up() cold -> every service ready (default lab.yaml, fresh lab dir), each run with the load
  average and the CPU seconds all lab processes used until ready
- idle lab RSS (daemon + every child), and USS per process (unique memory, summed): of it, how
  much is clean file-backed pages (program text no other process maps, e.g. /usr/bin/node when
  no other node runs; shared - and out of USS - as soon as a second one does)
- SIGKILL of a calculator -> EXITED event at the supervisor (exit seen)
- SIGKILL -> REMOVED at a broker watcher (out of lookups)
- SIGKILL -> READY again, against restart delay + 1 s (the delay the supervisor scheduled,
  which grows by backoff when an instance crashes again soon after a restart)

Crashes rotate over the calculator instances so no instance hits its start limit.
``--startup-only`` measures the first two figures and skips the crashes (~30 s).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.client import auth  # noqa: E402
from runtime.client.percentiles import percentile  # noqa: E402
from runtime.lab import Lab  # noqa: E402
from runtime.v1 import broker_pb2, broker_pb2_grpc, supervisor_pb2, supervisor_pb2_grpc  # noqa: E402

CONFIG = ROOT / "lab.yaml"
VICTIMS = ("calculator-1", "calculator-2", "calculator-ts-1")
TARGET_UP_S = 1.5  # issue 14
TARGET_USS_MB = 300.0  # issue 14
IDLE_SETTLE_S = 3.0  # start-up garbage goes before memory is read


def lab_tree(lab: Lab) -> list[psutil.Process]:
    root = psutil.Process(lab.pid)
    return [root, *root.children(recursive=True)]


def cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def cold_starts(n: int) -> list[float]:
    times = []
    for i in range(n):
        with tempfile.TemporaryDirectory() as d:
            load = os.getloadavg()[0]
            t0 = time.monotonic()
            lab = Lab.up(lab_dir=d, config=CONFIG, linger_s=5)
            times.append(time.monotonic() - t0)
            used = cpu_s(lab_tree(lab))
            lab.down()
        print(
            f"cold start {i + 1}: {times[-1]:.2f} s, {used:.2f} s CPU of all lab processes, load {load:.1f}"
        )
    return times


def lab_rss_mb(lab: Lab) -> float:
    return sum(p.memory_info().rss for p in lab_tree(lab) if p.is_running()) / 2**20


def file_private_mb(pid: int) -> float:
    """Private clean file-backed pages of ``pid`` (program text mapped by no other process), MB."""
    total_kb = 0
    name = ""
    try:
        with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if "-" in fields[0] and not fields[0].endswith(":"):
                    name = fields[5] if len(fields) > 5 else ""
                elif fields[0] == "Private_Clean:" and name.startswith("/"):
                    total_kb += int(fields[1])
    except OSError:
        return 0.0
    return total_kb / 1e3


def helper_name(p: psutil.Process) -> str:
    """``keeper`` or ``forkserver`` for the daemon's own helpers, else ``<name>-<pid>``."""
    try:
        command = " ".join(p.cmdline())
    except psutil.Error:
        command = ""
    for helper in ("keeper", "forkserver"):
        if helper in command:
            return helper
    return f"{p.name()}-{p.pid}"


def idle_uss(lab: Lab) -> dict[str, tuple[float, float]]:
    """instance (or ``supervisor``, ``keeper``, ``forkserver``) -> (USS MB, of it private file-backed MB)."""
    names = {lab.pid: "supervisor"}
    status = lab.status()
    for row in status[status.pid.notna()].itertuples():
        names[int(row.pid)] = str(row.instance)
    out = {}
    for p in lab_tree(lab):
        try:
            uss = p.memory_full_info().uss / 1e6
        except psutil.Error:
            continue
        name = names.get(p.pid) or helper_name(p)
        out[name] = (uss, file_private_mb(p.pid))
    return out


class Recorder:
    """Follows supervisor events and broker events in two threads, stamping arrival times."""

    def __init__(self, lab: Lab) -> None:
        self.sup_events: list[tuple[float, supervisor_pb2.ProcessEvent]] = []
        self.removed: list[tuple[float, str]] = []
        self._sup = auth.insecure_channel(lab.address, token=lab.token)
        self._brk = auth.insecure_channel(lab.broker_address, token=lab.token)
        s = supervisor_pb2_grpc.SupervisorServiceStub(self._sup).WatchProcessEvents(
            supervisor_pb2.WatchProcessEventsRequest()
        )
        b = broker_pb2_grpc.BrokerServiceStub(self._brk).WatchServices(
            broker_pb2.WatchServicesRequest(service_name="calculator.v1.CalculatorService")
        )
        self._streams = [s, b]
        threading.Thread(target=self._follow_sup, args=(s,), daemon=True).start()
        threading.Thread(target=self._follow_brk, args=(b,), daemon=True).start()

    def _follow_sup(self, stream) -> None:  # noqa: ANN001
        try:
            for ev in stream:
                self.sup_events.append((time.time(), ev))
        except grpc.RpcError:
            pass

    def _follow_brk(self, stream) -> None:  # noqa: ANN001
        try:
            for ev in stream:
                if ev.type == broker_pb2.SERVICE_EVENT_TYPE_REMOVED or (
                    ev.type == broker_pb2.SERVICE_EVENT_TYPE_UPDATED and "unhealthy" in ev.reason.lower()
                ):
                    self.removed.append((time.time(), ev.instance.instance_id))
        except grpc.RpcError:
            pass

    def close(self) -> None:
        for s in self._streams:
            s.cancel()
        self._sup.close()
        self._brk.close()


def crashes(lab: Lab, n: int) -> dict[str, list[float]]:
    rec = Recorder(lab)
    time.sleep(0.5)
    running = set(lab.status().instance)
    victims = [v for v in VICTIMS if v in running]
    out: dict[str, list[float]] = {"exit": [], "removed": [], "ready": [], "over_delay": []}
    for i in range(n):
        victim = victims[i % len(victims)]
        lab.wait_ready()
        pid = int(lab.status().set_index("instance").loc[victim, "pid"])
        t0 = time.time()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 15
        exit_t = ready_t = removed_t = scheduled_at = None
        while time.monotonic() < deadline and None in (exit_t, ready_t, removed_t):
            for _arrived, ev in list(rec.sup_events):
                if ev.instance_id != victim or ev.timestamp_us / 1e6 < t0:
                    continue
                if ev.kind == supervisor_pb2.PROCESS_EVENT_KIND_EXITED and ev.pid == pid and exit_t is None:
                    exit_t = ev.timestamp_us / 1e6 - t0
                if ev.kind == supervisor_pb2.PROCESS_EVENT_KIND_RESTART_SCHEDULED and scheduled_at is None:
                    scheduled_at = ev.next_attempt_at / 1000
                if ev.kind == supervisor_pb2.PROCESS_EVENT_KIND_READY and ev.pid != pid and ready_t is None:
                    ready_t = ev.timestamp_us / 1e6 - t0
            for arrived, inst in list(rec.removed):
                if inst == victim and arrived >= t0 and removed_t is None:
                    removed_t = arrived - t0
            time.sleep(0.005)
        for key, val in (("exit", exit_t), ("removed", removed_t), ("ready", ready_t)):
            if val is not None:
                out[key].append(val * 1000)
        if ready_t is not None and scheduled_at is not None:
            out["over_delay"].append((t0 + ready_t - scheduled_at) * 1000)
    rec.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crashes", type=int, default=10)
    parser.add_argument("--cold-starts", type=int, default=3)
    parser.add_argument("--startup-only", action="store_true", help="start-up time and memory only")
    args = parser.parse_args()

    print(f"{os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f} (1 min) at start")
    starts = cold_starts(args.cold_starts)
    with tempfile.TemporaryDirectory() as d:
        lab = Lab.up(lab_dir=d, config=CONFIG, linger_s=5)
        try:
            time.sleep(IDLE_SETTLE_S)
            rss = lab_rss_mb(lab)
            uss = idle_uss(lab)
            procs = len(lab.status())
            crash = crashes(lab, args.crashes) if not args.startup_only else {}
        finally:
            lab.down()

    print(f"{'figure':<48} {'measured':>14} {'target':>14}")
    cold_label = f"Lab.up() cold -> all ready (median of {len(starts)})"
    rss_label = f"idle lab RSS ({procs} processes + daemon)"
    uss_total = sum(u for u, _ in uss.values())
    files = sum(f for _, f in uss.values())
    print(
        f"{cold_label:<48} {statistics.median(starts):>12.2f} s {'<= 3.00 s':>14} (issue 14: <= {TARGET_UP_S} s)"
    )
    print(f"{rss_label:<48} {rss:>11.0f} MB {'<= 600 MB':>14}")
    print(f"{'idle lab USS (sum)':<48} {uss_total:>11.0f} MB {f'<= {TARGET_USS_MB:.0f} MB':>14}")
    print(f"{'  of it private file-backed (program text)':<48} {files:>11.0f} MB")
    print(
        "  "
        + ", ".join(
            f"{k} {u:.0f}" + (f" ({f:.0f} file)" if f >= 1 else "") for k, (u, f) in sorted(uss.items())
        )
    )
    if args.startup_only:
        return 0
    for key, label, target in (
        ("exit", "SIGKILL -> EXITED at supervisor, p95", "<= 20 ms"),
        ("removed", "SIGKILL -> out of broker (watch), p95", "<= 100 ms"),
        ("ready", "SIGKILL -> READY again (incl. delay), p95", "delay + 1 s"),
        ("over_delay", "scheduled restart -> READY, p95", "<= 1000 ms"),
    ):
        vals = crash[key]
        got = f"{percentile(vals, 95):.1f} ms" if vals else "not seen"
        print(f"{label + f' ({len(vals)}/{args.crashes})':<48} {got:>14} {target:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
