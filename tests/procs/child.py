"""A tiny lab service for supervisor tests: serves grpc.health.v1 on LAB_PORT and prints READY.

Flags pick a misbehaviour: --exit-code N (exit at once, before READY), --crash-after S (exit
with --crash-code after S seconds of serving), --no-ready (never print READY), --ignore-term
(survive SIGTERM), --not-serving (health says NOT_SERVING), --say TEXT (print lines first),
--spawn-grandchild (start a sleeping grandchild in the same process group), --print-env (print
the LAB_* environment), --broker (also serve BrokerService.ReportExit, printing each report).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from runtime.v1 import broker_pb2, broker_pb2_grpc


class ReportExitPrinter(broker_pb2_grpc.BrokerServiceServicer):
    """Just enough broker for the supervisor's ReportExit: print what was reported."""

    def ReportExit(self, request, context):
        print(f"REPORT_EXIT {request.instance_id} {request.pid} {request.reason}", flush=True)
        return broker_pb2.ReportExitResponse(removed=True, revision=1)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--exit-code", type=int, default=None)
    p.add_argument("--crash-after", type=float, default=None)
    p.add_argument("--crash-code", type=int, default=1)
    p.add_argument("--no-ready", action="store_true")
    p.add_argument("--ignore-term", action="store_true")
    p.add_argument("--not-serving", action="store_true")
    p.add_argument("--say", action="append", default=[])
    p.add_argument("--spawn-grandchild", action="store_true")
    p.add_argument("--print-env", action="store_true")
    p.add_argument("--broker", action="store_true")
    args = p.parse_args()

    if args.print_env:
        for key in sorted(os.environ):
            if key.startswith("LAB_") or key == "PYTHONUNBUFFERED":
                print(f"ENV {key}={os.environ[key]}", flush=True)
    for text in args.say:
        print(text, flush=True)
    if args.exit_code is not None:
        print(f"child {os.environ.get('LAB_INSTANCE')} giving up with code {args.exit_code}", file=sys.stderr)
        return args.exit_code
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if args.spawn_grandchild:
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])

    port_wanted = int(os.environ.get("LAB_PORT") or 0)
    strict = os.environ.get("LAB_PORT_STRICT") == "1"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.so_reuseport", 0)])
    servicer = health.HealthServicer()
    status = (
        health_pb2.HealthCheckResponse.NOT_SERVING
        if args.not_serving
        else health_pb2.HealthCheckResponse.SERVING
    )
    servicer.set("", status)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    if args.broker:
        broker_pb2_grpc.add_BrokerServiceServicer_to_server(ReportExitPrinter(), server)
    try:
        port = server.add_insecure_port(f"127.0.0.1:{port_wanted}")
    except RuntimeError:
        port = 0
    if port == 0 or (strict and port != port_wanted):
        print(
            f"cannot bind 127.0.0.1:{port_wanted}: port in use (strict={strict})", file=sys.stderr, flush=True
        )
        return 4
    server.start()
    if not args.no_ready:
        print(f"READY port={port}", flush=True)
    stop = threading.Event()
    if not args.ignore_term:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    deadline = time.monotonic() + args.crash_after if args.crash_after is not None else None
    while not stop.is_set():
        if deadline is not None and time.monotonic() >= deadline:
            print(f"crashing with code {args.crash_code}", file=sys.stderr, flush=True)
            os._exit(args.crash_code)
        stop.wait(0.02)
    server.stop(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
