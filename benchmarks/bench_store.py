"""The broker and state services on the local store vs on a three-member etcd cluster, one run.

    .venv/bin/python benchmarks/bench_store.py

Starts three etcd members (``python -m runtime.services.etcd_member``, data in a temp lab dir),
then a broker and a state service twice: ``store: local`` and ``store: etcd``. For each, from
this process over loopback gRPC, sequential calls (closed loop, so each figure is one round trip):

1. LookupService: p50 / p99 (etcd: one linearizable range read per lookup).
2. CompareAndSwap round trip: Get, then the timed CAS (etcd: a range read and a transaction
   comparing mod_revision).
3. Watch delivery: a state Set, until a Watch stream (a thread here) holds the change.
4. Registration -> visible: Register, until a WatchServices stream holds the ADDED event.

No targets: the point is the ratio (etcd / local) measured side by side on the same machine. etcd
commits every write to a majority and fsyncs it, so writes cost what a replicated store costs.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.client.percentiles import percentile  # noqa: E402
from runtime.identity import parse_ready_line  # noqa: E402
from runtime.v1 import broker_pb2, broker_pb2_grpc, state_pb2, state_pb2_grpc  # noqa: E402

LOOKUPS = 500
CASES = 300
WATCH_CHANGES = 200
REGISTRATIONS = 200
WARMUP = 50
READY_TIMEOUT_S = 30.0
RPC_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 8.0
MEMBERS = 3


def start(
    module: str, lab_dir: str, instance: str, env: dict[str, str], *args: str
) -> tuple[subprocess.Popen[str], str]:
    """Start ``python -m module`` as lab instance ``instance``; returns it and its READY address."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("LAB_")}
    child_env.update(
        LAB_DIR=lab_dir, LAB_SERVICE=instance.rsplit("-", 1)[0], LAB_INSTANCE=instance,
        LAB_SUPERVISOR_PID=str(os.getpid()), PYTHONUNBUFFERED="1", **env,
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    return proc


def wait_ready(proc: subprocess.Popen[str], what: str) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        port = parse_ready_line(line)
        if port:
            # Keep reading its output, so a chatty child never blocks on a full pipe.
            threading.Thread(target=proc.stdout.read, name=f"{what}-output", daemon=True).start()
            return f"127.0.0.1:{port}"
    raise SystemExit(f"{what} gave no READY line (exit {proc.poll()})")


def stop(procs: list[subprocess.Popen[str]]) -> None:
    """SIGTERM to all, wait, SIGKILL what is left; always reaped."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def timed(n: int, one: Callable[[int], float]) -> list[float]:
    """``one(i)`` returns one latency in ms; WARMUP untimed calls first."""
    for i in range(WARMUP):
        one(-1 - i)
    return [one(i) for i in range(n)]


def bench_lookup(broker: broker_pb2_grpc.BrokerServiceStub) -> list[float]:
    for n in range(4):
        inst = broker_pb2.ServiceInstance(
            service_name="calculator", instance_id=f"calculator-{n}", address=f"127.0.0.1:{50000 + n}",
            grpc_services=["calculator.v1.CalculatorService"],
        )  # fmt: skip
        broker.Register(broker_pb2.RegisterRequest(instance=inst, ttl_ms=600_000), timeout=RPC_TIMEOUT_S)
    request = broker_pb2.LookupServiceRequest(service_name="CalculatorService")

    def one(_i: int) -> float:
        t0 = time.perf_counter()
        found = broker.LookupService(request, timeout=RPC_TIMEOUT_S)
        assert len(found.instances) == 4
        return (time.perf_counter() - t0) * 1000

    return timed(LOOKUPS, one)


def bench_cas(state: state_pb2_grpc.StateServiceStub) -> list[float]:
    def one(_i: int) -> float:
        cur = state.Get(state_pb2.StateKey(key="bench/counter"), timeout=RPC_TIMEOUT_S)
        request = state_pb2.CASRequest(
            key="bench/counter", expected_version=cur.version, new_value=str(int(cur.value or "0") + 1)
        )
        t0 = time.perf_counter()
        assert state.CompareAndSwap(request, timeout=RPC_TIMEOUT_S).swapped
        return (time.perf_counter() - t0) * 1000

    return timed(CASES, one)


def follow(call: grpc.Call, events: queue.Queue[tuple[float, object]]) -> threading.Thread:
    def run() -> None:
        try:
            for item in call:
                events.put((time.perf_counter(), item))
        except grpc.RpcError:
            pass

    thread = threading.Thread(target=run, name="bench-store-watch", daemon=True)
    thread.start()
    return thread


def bench_watch(state: state_pb2_grpc.StateServiceStub) -> list[float]:
    events: queue.Queue[tuple[float, object]] = queue.Queue()
    call = state.Watch(state_pb2.StateKey(key="bench/watched"))
    follow(call, events)
    events.get(timeout=RPC_TIMEOUT_S)  # the current value: the watch is in place
    try:

        def one(i: int) -> float:
            t0 = time.perf_counter()
            state.Set(state_pb2.StateEntry(key="bench/watched", value=str(i)), timeout=RPC_TIMEOUT_S)
            received, _ = events.get(timeout=RPC_TIMEOUT_S)
            return (received - t0) * 1000

        return timed(WATCH_CHANGES, one)
    finally:
        call.cancel()


def bench_registration(broker: broker_pb2_grpc.BrokerServiceStub) -> list[float]:
    events: queue.Queue[tuple[float, object]] = queue.Queue()
    call = broker.WatchServices(broker_pb2.WatchServicesRequest(service_name="visible"))
    follow(call, events)
    events.get(timeout=RPC_TIMEOUT_S)  # SNAPSHOT_END
    try:

        def one(i: int) -> float:
            inst = broker_pb2.ServiceInstance(
                service_name="visible", instance_id=f"visible-{i}", address="127.0.0.1:1"
            )
            t0 = time.perf_counter()
            broker.Register(broker_pb2.RegisterRequest(instance=inst, ttl_ms=600_000), timeout=RPC_TIMEOUT_S)
            while True:
                received, event = events.get(timeout=RPC_TIMEOUT_S)
                assert isinstance(event, broker_pb2.ServiceEvent)
                if (
                    event.type == broker_pb2.SERVICE_EVENT_TYPE_ADDED
                    and event.instance.instance_id == inst.instance_id
                ):
                    return (received - t0) * 1000

        return timed(REGISTRATIONS, one)
    finally:
        call.cancel()


def measure(broker_address: str, state_address: str) -> dict[str, list[float]]:
    with grpc.insecure_channel(broker_address) as b, grpc.insecure_channel(state_address) as s:
        broker, state = broker_pb2_grpc.BrokerServiceStub(b), state_pb2_grpc.StateServiceStub(s)
        return {
            "lookup": bench_lookup(broker),
            "CAS round trip": bench_cas(state),
            "watch delivery": bench_watch(state),
            "registration -> visible": bench_registration(broker),
        }


def main() -> int:
    if not (os.access("/usr/bin/etcd", os.X_OK) or shutil.which("etcd")):
        print(
            "etcd is not installed: install Debian's etcd-server package (sudo apt-get install etcd-server)"
        )
        return 2
    lab_dir = tempfile.mkdtemp(prefix="bench-store-")
    procs: list[subprocess.Popen[str]] = []
    try:
        members = [
            start("runtime.services.etcd_member", lab_dir, f"etcd-{i}", {}, "--members", str(MEMBERS))
            for i in range(1, MEMBERS + 1)
        ]
        procs += members
        for i, proc in enumerate(members, 1):
            wait_ready(proc, f"etcd-{i}")
        results: dict[str, dict[str, list[float]]] = {}
        for store, env in (("local", {}), ("etcd", {"LAB_STORE": "etcd"})):
            broker = start("runtime.services.broker", lab_dir, f"broker-{store}", env)
            state = start("runtime.services.state", lab_dir, f"state-{store}", env)
            procs += [broker, state]
            results[store] = measure(wait_ready(broker, "broker"), wait_ready(state, "state"))
            stop([broker, state])
        print(f"\nlocal store vs a {MEMBERS}-member etcd cluster on loopback (ms, sequential calls)")
        print(
            f"{'figure':26} {'local p50':>10} {'local p99':>10} {'etcd p50':>10} {'etcd p99':>10} {'p50 x':>7}"
        )
        for figure in results["local"]:
            lo, et = results["local"][figure], results["etcd"][figure]
            lp50, lp99, ep50, ep99 = (
                percentile(lo, 50),
                percentile(lo, 99),
                percentile(et, 50),
                percentile(et, 99),
            )
            print(f"{figure:26} {lp50:10.2f} {lp99:10.2f} {ep50:10.2f} {ep99:10.2f} {ep50 / lp50:7.1f}")
        return 0
    finally:
        stop(procs)
        shutil.rmtree(lab_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
