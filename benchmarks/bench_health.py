"""Health figures, measured side by side with their targets.

    .venv/bin/python benchmarks/bench_health.py [--crashes 20] [--seconds 10]

1. crash -> UNHEALTHY at a WatchHealth subscriber, p95 over N SIGKILLed calculators (target 100 ms);
2. crash -> the instance is out of the broker's LookupService, p95 (target 100 ms);
3. the health service's CPU with 50 instances reporting 10 times a second each (target < 10 %);
4. the health service SIGKILLed: time until a fresh one has every state back (target 2 s).

"Crash" is the moment before ``lab.kill`` asks the supervisor to SIGKILL the process, so the
figures include that call. Runs its own lab in a temporary directory and stops it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
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

from verdict import verdict  # noqa: E402

from runtime.client import auth  # noqa: E402
from runtime.client.percentiles import percentile  # noqa: E402
from runtime.lab import Lab  # noqa: E402
from runtime.lab.health import HealthChange  # noqa: E402
from runtime.v1 import broker_pb2, broker_pb2_grpc, common_pb2, health_pb2, health_pb2_grpc  # noqa: E402

TARGET_UNHEALTHY_MS = 100.0
TARGET_LOOKUP_MS = 100.0
TARGET_CPU_PERCENT = 10.0
REPORTERS = 50
REPORTS_PER_S = 10
HEALTH_KILLS = 5
TARGET_REBUILD_MS = 2000.0
WAIT_S = 15.0
LAB_FILE = ROOT / "tests" / "labs" / "health-crashes.yaml"  # calculators restart fast, with no start limit


def p95(values: list[float]) -> float:
    """95th percentile (the helper the DEGRADED rule uses too)."""
    return percentile(values, 95)


def wait_until(pred, what: str, timeout_s: float = WAIT_S):
    deadline = time.monotonic() + timeout_s
    while not (value := pred()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")
        time.sleep(0.005)
    return value


def bench_crashes(crashes: int) -> tuple[list[float], list[float]]:
    """SIGKILL calculators one after another; (crash -> UNHEALTHY ms, crash -> out of lookup ms)."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-health-"))
    lab = Lab.up(lab_dir=tmp / "lab", config=LAB_FILE, linger_s=2)
    seen: list[tuple[float, HealthChange]] = []
    lock = threading.Lock()

    def on_change(change: HealthChange) -> None:
        with lock:
            seen.append((time.time(), change))

    watch = lab.health.watch(on_change)
    to_unhealthy: list[float] = []
    to_out: list[float] = []
    try:
        broker = broker_pb2_grpc.BrokerServiceStub(auth.insecure_channel(lab.broker_address, token=lab.token))

        def lookup_pids() -> dict[str, int]:
            reply = broker.LookupService(
                broker_pb2.LookupServiceRequest(service_name="calculator"), timeout=2
            )
            return {i.instance_id: i.pid for i in reply.instances}

        def state_after(instance: str, state: str, t: float) -> float | None:
            with lock:
                return next(
                    (at for at, c in seen if at >= t and c.instance == instance and c.new_state == state),
                    None,
                )

        for n in range(crashes):
            instance = f"calculator-{n % 2 + 1}"
            pid = wait_until(lambda i=instance: lookup_pids().get(i), f"{instance} in the broker")
            wait_until(lambda: watch.connected.is_set(), "the health watch")
            t0 = time.time()
            lab.kill("calculator", instance)
            while lookup_pids().get(instance) == pid:
                pass
            to_out.append((time.time() - t0) * 1000)
            t_bad = wait_until(
                lambda i=instance, t=t0: state_after(i, "UNHEALTHY", t), f"{instance} UNHEALTHY"
            )
            to_unhealthy.append((t_bad - t0) * 1000)
            wait_until(lambda i=instance, t=t0: state_after(i, "HEALTHY", t), f"{instance} HEALTHY again")
        rebuilt = [_rebuild_after_health_kill(lab) for _ in range(HEALTH_KILLS)]
    finally:
        watch.stop()
        lab.down()
        shutil.rmtree(tmp, ignore_errors=True)
    return to_unhealthy, to_out, rebuilt


def _rebuild_after_health_kill(lab: Lab) -> tuple[float, float]:
    """SIGKILL the health service; ms until a fresh one shows every state (from the kill, from its spawn)."""
    wanted = {"broker-1", "calculator-1", "calculator-2"}
    old_pid = int(lab.status("health").pid.iloc[0])
    t0 = time.time()
    lab.kill("health")

    def rebuilt() -> bool:
        status = lab.status("health")
        if status.empty or status.state.iloc[0] != "RUNNING" or int(status.pid.iloc[0]) == old_pid:
            return False
        try:
            df = lab.health()
        except Exception:  # noqa: BLE001 - the new process may not answer yet
            return False
        return wanted <= set(df[df.state == "HEALTHY"].instance)

    wait_until(rebuilt, "states rebuilt after the health service restart")
    done = time.time()
    ev = lab.events("health")
    spawned = ev[(ev.event == "SPAWNED")].time.iloc[-1].timestamp()
    return (done - t0) * 1000, (done - spawned) * 1000


async def _reporter(stub, index: int, stop: asyncio.Event) -> int:
    async def reports():
        n = 0
        while not stop.is_set():
            # Mostly the same state (a refresh), a transition every tenth report.
            state = health_pb2.DEGRADED if (n // 10) % 2 else health_pb2.HEALTHY
            yield health_pb2.HealthStatus(
                service_name="bench", instance_id=f"bench-{index}", state=state, message=f"report {n}"
            )
            n += 1
            await asyncio.sleep(1 / REPORTS_PER_S)
        yield health_pb2.HealthStatus(
            service_name="bench",
            instance_id=f"bench-{index}",
            state=health_pb2.UNHEALTHY,
            message="done",
            final=True,
        )

    ack = await stub.ReportHealth(reports())
    return ack.reports


async def _load(address: str, seconds: float, pid: int) -> tuple[float, int, int]:
    proc = psutil.Process(pid)
    stop = asyncio.Event()
    async with grpc.aio.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthServiceStub(ch)
        watch = stub.WatchHealth(common_pb2.Empty())
        received = 0

        async def drain() -> None:
            nonlocal received
            async for _ in watch:
                received += 1

        drainer = asyncio.create_task(drain())
        tasks = [asyncio.create_task(_reporter(stub, i, stop)) for i in range(REPORTERS)]
        await asyncio.sleep(1.0)  # warm up: every stream open
        cpu0, t0 = proc.cpu_times(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu1, t1 = proc.cpu_times(), time.monotonic()
        stop.set()
        reports = sum(await asyncio.gather(*tasks))
        watch.cancel()
        drainer.cancel()
        await asyncio.gather(drainer, return_exceptions=True)
    busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return 100 * busy / (t1 - t0), reports, received


def bench_cpu(seconds: float) -> tuple[float, int, int]:
    """CPU % of one core used by a standalone health service under REPORTERS x REPORTS_PER_S."""
    sys.path.insert(0, str(ROOT / "tests"))
    from service_process import start_service

    tmp = Path(tempfile.mkdtemp(prefix="bench-health-cpu-"))
    proc = start_service("runtime.services.health", tmp, service="health", instance="health-1")
    try:
        return asyncio.run(_load(proc.address, seconds, proc.pid))
    finally:
        proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    """Run the measurements, print them next to their targets; exit MISSED_EXIT when one is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crashes", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    unhealthy, out, rebuilt = bench_crashes(args.crashes)
    cpu, reports, received = bench_cpu(args.seconds)
    print(f"crashes: {len(unhealthy)} SIGKILLed calculators")
    print(
        f"crash -> UNHEALTHY at a WatchHealth subscriber: p50 {statistics.median(unhealthy):.1f} ms, "
        f"p95 {p95(unhealthy):.1f} ms, max {max(unhealthy):.1f} ms (target p95 <= {TARGET_UNHEALTHY_MS:.0f} ms)"
    )
    print(
        f"crash -> out of LookupService: p50 {statistics.median(out):.1f} ms, p95 {p95(out):.1f} ms, "
        f"max {max(out):.1f} ms (target p95 <= {TARGET_LOOKUP_MS:.0f} ms)"
    )
    print(
        f"health service SIGKILLed -> states rebuilt (ms from the kill / from the new process's spawn): "
        f"{', '.join(f'{k:.0f}/{s:.0f}' for k, s in rebuilt)} (target <= {TARGET_REBUILD_MS:.0f} ms; "
        "from the kill includes the supervisor's growing restart backoff)"
    )
    print(
        f"health service CPU, {REPORTERS} instances x {REPORTS_PER_S} reports/s over {args.seconds:g} s: "
        f"{cpu:.1f} % of one core (target < {TARGET_CPU_PERCENT:.0f} %); "
        f"{reports} reports, {received} events at one watcher"
    )
    checks = {
        "crash -> UNHEALTHY p95": p95(unhealthy) <= TARGET_UNHEALTHY_MS,
        "crash -> out of LookupService p95": p95(out) <= TARGET_LOOKUP_MS,
        "states rebuilt after a health restart": all(s <= TARGET_REBUILD_MS for _, s in rebuilt),
        "health service CPU": cpu < TARGET_CPU_PERCENT,
    }
    return verdict([name for name, ok in checks.items() if not ok])


if __name__ == "__main__":
    sys.exit(main())
