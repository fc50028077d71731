"""The calculator's servicer on a bare grpc.aio server: no agent, no token, no log shipping.

    .venv/bin/python benchmarks/bare_calculator.py     # prints "READY port=N", serves until SIGTERM
    LAB_EVENT_LOOP=asyncio .venv/bin/python benchmarks/bare_calculator.py   # on asyncio's own loop

The reference of bench_full_lab.py's "agent cost" row: the same ``Calculator`` class the lab runs
(calculator/server.py), so the only difference ghz sees is what the agent adds per call
(token check, correlation id, DEGRADED timing, faults, one shipped log line).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402

from calculator.server import Calculator  # noqa: E402
from calculator.v1 import calculator_pb2_grpc  # noqa: E402
from runtime.identity import Identity, ready_line  # noqa: E402
from runtime.services.main import run  # noqa: E402


async def main() -> None:
    """Serve Calculator on 127.0.0.1 (any port) until SIGTERM."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    calculator_pb2_grpc.add_CalculatorServiceServicer_to_server(
        Calculator(Identity("calculator", "bare-1")), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(ready_line(port), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(grace=0.5)


if __name__ == "__main__":
    run(main)  # the services' event loop: uvloop, or asyncio's with LAB_EVENT_LOOP=asyncio
