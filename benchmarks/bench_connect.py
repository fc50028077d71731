"""Connect vs gRPC: the same CheckHealth handler, called both ways, side by side in one run.

    .venv/bin/python benchmarks/bench_connect.py [--calls 1000]

One client, one call at a time, a persistent connection each way (a gRPC channel; an HTTP/1.1
keep-alive connection for Connect), against one health service in a small lab of its own.
Prints p50/p99 per protocol and encoding and the Connect/gRPC ratio. There is no target: the
figure is a teaching point (what HTTP/1.1 + JSON costs beside HTTP/2 + protobuf, both through
the same servicer), so this script always exits 0 once it measured.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from verdict import verdict  # noqa: E402

from runtime.client import auth  # noqa: E402
from runtime.client.percentiles import percentile  # noqa: E402
from runtime.lab import Lab  # noqa: E402
from runtime.v1 import health_pb2, health_pb2_grpc  # noqa: E402

LAB_FILE = ROOT / "tests" / "labs" / "connect.yaml"
PATH = "/runtime.v1.HealthService/CheckHealth"
WARMUP = 50


def timed(call: Callable[[], object], n: int) -> list[float]:
    """Milliseconds per call, after a short warm-up."""
    for _ in range(WARMUP):
        call()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-connect-"))
    lab = Lab.up(lab_dir=tmp / "lab", config=LAB_FILE, linger_s=1)
    try:
        lab.wait_for(lambda: (lab.health().state == "HEALTHY").sum() >= 5, 20, "every instance HEALTHY")
        row = lab.status().set_index("instance").loc["health-1"]
        request = health_pb2.ServiceKey(service_name="calculator")
        results: dict[str, list[float]] = {}
        with auth.insecure_channel(f"127.0.0.1:{int(row.port)}", token=lab.token) as channel:
            stub = health_pb2_grpc.HealthServiceStub(channel)
            results["gRPC (HTTP/2, protobuf)"] = timed(lambda: stub.CheckHealth(request, timeout=5), args.calls)
        conn = http.client.HTTPConnection("127.0.0.1", int(row.http_port), timeout=5)
        headers = {"authorization": f"Bearer {lab.token}"}

        def connect(content_type: str, body: bytes) -> Callable[[], object]:
            def call() -> object:
                conn.request("POST", PATH, body=body, headers={**headers, "content-type": content_type})
                resp = conn.getresponse()
                data = resp.read()
                assert resp.status == 200, data
                return data

            return call

        results["Connect (HTTP/1.1, JSON)"] = timed(
            connect("application/json", json.dumps({"serviceName": "calculator"}).encode()), args.calls
        )
        results["Connect (HTTP/1.1, binary)"] = timed(
            connect("application/proto", request.SerializeToString()), args.calls
        )
        conn.close()
    finally:
        lab.down()
        shutil.rmtree(tmp, ignore_errors=True)
    grpc_p50 = percentile(results["gRPC (HTTP/2, protobuf)"], 50)
    print(f"CheckHealth, {args.calls} sequential calls each, one connection each:")
    print(f"  {'protocol':<28} {'p50 ms':>8} {'p99 ms':>8} {'p50 / gRPC':>11}")
    for name, values in results.items():
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(f"  {name:<28} {p50:8.2f} {p99:8.2f} {p50 / grpc_p50:10.2f}x")
    return verdict([])


if __name__ == "__main__":
    sys.exit(main())
